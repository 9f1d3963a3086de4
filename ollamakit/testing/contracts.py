"""Contract suites: the behaviour every driver of a kind must show, written once as pytest tests.

To run the storage contract against every installed storage driver::

    from ollamakit.testing.contracts import StorageContract


    class TestStorage(StorageContract):
        pass

A plugin author pins the suite to their own driver with ``drivers = ("mine",)``. Drivers are
built the way the server builds them (``Settings(storage=name)`` and the ``make_storage`` hook),
in a fresh model directory per test, so a driver that keeps its data elsewhere should derive its
location from ``kernel.settings.models_dir``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .. import drivers
from .. import manifest as mf
from ..config import Settings
from ..errors import BadRequest, DigestMismatch, InvalidDigest, NotFound
from ..kernel import make_kernel
from ..names import ModelName

PARTS = ("registry.ollama.ai", "library", "tiny", "latest")
# A blob streamed through a writer: over two of S3's smallest parts (5 MiB), so that a driver
# with multipart uploads sends several when its parts are that small.
STREAMED = 11 << 20


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def directories(root: Path) -> set[str]:
    """Every folder under ``root``, relative: what a deletion must leave as it found it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


class StorageContract:
    """Blobs, manifests and the ``ModelStore`` on top, for each driver in ``drivers``."""

    drivers: tuple[str, ...] | None = None  # None: every installed storage driver

    def pytest_generate_tests(self, metafunc):
        if "driver_name" in metafunc.fixturenames:
            metafunc.parametrize("driver_name", self.drivers or drivers.driver_names("storage"))

    @pytest.fixture
    def kernel(self, driver_name, tmp_path):
        kernel = make_kernel(Settings(models_dir=tmp_path / "models", storage=driver_name))
        yield kernel
        kernel.close()

    @pytest.fixture
    def storage(self, kernel):
        storage = kernel.storage
        storage.scratch_dir()
        return storage

    @pytest.fixture
    def store(self, kernel, storage):
        return kernel.store

    # -- helpers

    @staticmethod
    def scratch(storage, data: bytes) -> Path:
        path = (
            storage.scratch_dir()
            / f"contract-{hashlib.sha256(data).hexdigest()[:12]}-{time.monotonic_ns()}"
        )
        path.write_bytes(data)
        return path

    def put(self, storage, data: bytes) -> str:
        digest = digest_of(data)
        storage.put_blob(digest, self.scratch(storage, data))
        return digest

    @staticmethod
    def make_model(store, *payloads: bytes) -> mf.Manifest:
        """A manifest over new blobs: a config, then one model layer per payload."""
        config_digest, config_size = store.add_bytes(b'{"model_format":"gguf"}')
        layers = [mf.Layer(mf.MODEL, *store.add_bytes(data)) for data in payloads]
        return mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size), layers)

    # -- blobs ---------------------------------------------------------------------------------

    def test_driver_is_found_by_name(self, driver_name, storage):
        from ..interfaces import Storage

        assert isinstance(storage, Storage)
        assert isinstance(storage, drivers.driver_class("storage", driver_name.upper()))

    def test_blob_round_trip(self, storage):
        data = b"blob contents \x00\xff" * 1000
        digest = digest_of(data)
        assert not storage.has_blob(digest) and storage.blob_size(digest) is None
        source = self.scratch(storage, data)
        assert storage.put_blob(digest, source) is True
        assert not source.exists(), "put_blob must consume its source"
        assert storage.has_blob(digest) and storage.blob_size(digest) == len(data)
        with storage.open_blob(digest) as fh:
            assert fh.read() == data
        assert Path(storage.blob_path(digest)).read_bytes() == data
        assert list(storage.list_blobs()) == [digest]

    def test_empty_blob(self, storage):
        digest = self.put(storage, b"")
        assert storage.has_blob(digest) and storage.blob_size(digest) == 0

    def test_put_of_an_existing_digest_returns_false_and_keeps_the_original(self, storage):
        digest = self.put(storage, b"original")
        impostor = self.scratch(storage, b"something else entirely")
        assert storage.put_blob(digest, impostor) is False
        assert not impostor.exists()
        with storage.open_blob(digest) as fh:
            assert fh.read() == b"original"

    def test_absent_blob(self, storage):
        digest = digest_of(b"never stored")
        with pytest.raises(FileNotFoundError):
            storage.open_blob(digest)
        storage.delete_blob(digest)  # deleting what is absent is not an error

    def test_delete_and_list_blobs(self, storage):
        digests = {self.put(storage, bytes([i]) * (i + 1)) for i in range(5)}
        assert set(storage.list_blobs()) == digests
        removed = sorted(digests)[:2]
        for digest in removed:
            storage.delete_blob(digest)
            assert not storage.has_blob(digest)
        assert set(storage.list_blobs()) == digests - set(removed)

    def test_listing_shows_no_scratch_or_temporary_files(self, storage):
        digest = self.put(storage, b"kept")
        self.scratch(storage, b"a temporary file in the scratch folder")
        assert list(storage.list_blobs()) == [digest]

    @pytest.mark.parametrize(
        "bad", ["../../etc/passwd", "sha256:short", "sha256:" + "g" * 64, "md5:" + "0" * 32, ""]
    )
    def test_refuses_what_is_not_a_digest(self, storage, bad):
        for call in (
            storage.has_blob,
            storage.blob_size,
            storage.open_blob,
            storage.delete_blob,
            storage.blob_path,
        ):
            with pytest.raises(InvalidDigest):
                call(bad)
        source = self.scratch(storage, b"x")
        with pytest.raises(InvalidDigest):
            storage.put_blob(bad, source)

    def test_deleting_every_blob_leaves_the_tree_as_fresh(self, kernel, storage):
        before = directories(kernel.settings.models_dir)
        digests = [self.put(storage, os.urandom(64)) for _ in range(20)]
        for digest in digests:
            storage.delete_blob(digest)
        assert directories(kernel.settings.models_dir) == before

    # -- blob writers ------------------------------------------------------------------------

    def test_blob_writer_round_trip_reports_new_then_existing(self, storage):
        data = os.urandom(STREAMED)
        digest = digest_of(data)
        with storage.blob_writer(digest, len(data)) as out:
            for start in range(0, len(data), 1 << 19):
                out.write(data[start : start + (1 << 19)])
            assert out.size == len(data) and out.sha256 == digest[7:]
            assert out.commit() is True
        with storage.open_blob(digest) as fh:
            assert fh.read() == data
        with storage.blob_writer(digest) as out:  # no size: the driver cannot plan its parts
            out.write(data)
            assert out.commit() is False
        assert list(storage.list_blobs()) == [digest]

    def test_blob_writer_left_without_a_commit_leaves_nothing(self, storage):
        data = os.urandom(STREAMED)
        digest = digest_of(data)
        with pytest.raises(ConnectionError):
            with storage.blob_writer(digest, len(data)) as out:
                out.write(data[: STREAMED // 2])
                raise ConnectionError("the client went away mid-body")
        self.assert_nothing_left(storage, digest)

    def test_blob_writer_with_the_wrong_bytes_leaves_nothing(self, storage):
        data = os.urandom(STREAMED)
        digest = digest_of(b"what the client promised")
        with storage.blob_writer(digest) as out:
            out.write(data)
            with pytest.raises(DigestMismatch):
                out.commit()
            with pytest.raises(ValueError):
                out.write(b"more")  # an aborted writer takes nothing
        self.assert_nothing_left(storage, digest)

    def test_blob_writer_refuses_what_is_not_a_digest(self, storage):
        with pytest.raises(InvalidDigest):
            storage.blob_writer("sha256:short")

    def test_concurrent_writers_of_one_blob_make_it_once(self, storage):
        data = os.urandom(STREAMED)
        digest = digest_of(data)
        start = threading.Barrier(4)

        def upload(_):
            with storage.blob_writer(digest, len(data)) as out:
                start.wait()
                for offset in range(0, len(data), 1 << 20):
                    out.write(data[offset : offset + (1 << 20)])
                return out.commit()

        with ThreadPoolExecutor(4) as pool:
            created = list(pool.map(upload, range(4)))
        assert created.count(True) == 1, created
        with storage.open_blob(digest) as fh:
            assert fh.read() == data
        assert list(storage.list_blobs()) == [digest]
        assert list(storage.scratch_dir().iterdir()) == []

    @staticmethod
    def assert_nothing_left(storage, digest: str) -> None:
        """No blob, no scratch file, and (for a driver with multipart uploads) no upload."""
        assert not storage.has_blob(digest)
        assert list(storage.list_blobs()) == []
        assert list(storage.scratch_dir().iterdir()) == []
        uploads_in_flight = getattr(storage, "uploads_in_flight", None)
        if uploads_in_flight is not None:
            assert uploads_in_flight() == []

    # -- manifests -----------------------------------------------------------------------------

    def test_manifest_round_trip(self, storage):
        assert storage.read_manifest(PARTS) is None
        storage.write_manifest(PARTS, b'{"schemaVersion":2}\n')
        assert storage.read_manifest(PARTS) == b'{"schemaVersion":2}\n'
        storage.write_manifest(PARTS, b"replaced")
        assert storage.read_manifest(PARTS) == b"replaced"
        [(parts, mtime)] = list(storage.list_manifests())
        assert parts == PARTS
        assert isinstance(mtime, float) and abs(mtime - time.time()) < 300

    def test_manifest_names_keep_their_case(self, storage):
        parts = ("Example.COM:5000", "Team_A", "My-Model.v2", "Q4_K_M")
        storage.write_manifest(parts, b"m")
        assert [p for p, _ in storage.list_manifests()] == [parts]
        assert storage.read_manifest(parts) == b"m"

    @pytest.mark.parametrize(
        "parts",
        [
            ("..", "library", "m", "latest"),
            ("registry.ollama.ai", "..", "m", "latest"),
            ("registry.ollama.ai", "library", "a/b", "latest"),
            ("registry.ollama.ai", "library", "m", "../../x"),
            ("registry.ollama.ai", "lib.rary", "m", "latest"),
            ("registry.ollama.ai", "library", "", "latest"),
            ("registry.ollama.ai", "library", "m", "t" * 81),
        ],
    )
    def test_refuses_invalid_name_parts(self, storage, parts):
        with pytest.raises((ValueError, BadRequest)):
            storage.write_manifest(parts, b"m")
        assert list(storage.list_manifests()) == []

    def test_delete_manifest_keeps_siblings_and_prunes_what_it_empties(self, kernel, storage):
        before = directories(kernel.settings.models_dir)
        names = [
            PARTS,
            PARTS[:3] + ("other-tag",),
            PARTS[:2] + ("sibling", "latest"),
            ("localhost:5000", "team", "private", "v1"),
        ]
        for parts in names:
            storage.write_manifest(parts, "|".join(parts).encode())
        storage.delete_manifest(PARTS)
        assert storage.read_manifest(PARTS) is None
        assert sorted(p for p, _ in storage.list_manifests()) == sorted(names[1:])
        assert storage.read_manifest(names[1]) == "|".join(names[1]).encode()
        storage.delete_manifest(PARTS)  # absent: not an error
        for parts in names[1:]:
            storage.delete_manifest(parts)
        assert list(storage.list_manifests()) == []
        assert directories(kernel.settings.models_dir) == before

    def test_manifest_replacement_is_atomic(self, storage):
        old, new = b"A" * 300_000, b"B" * 300_000
        storage.write_manifest(PARTS, old)
        seen, stop = set(), threading.Event()

        def writer():
            while not stop.is_set():
                storage.write_manifest(PARTS, new)
                storage.write_manifest(PARTS, old)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for _ in range(200):
                seen.add(storage.read_manifest(PARTS))
        finally:
            stop.set()
            thread.join()
        assert seen <= {old, new}, "a reader saw a partly written manifest"

    # -- the model store on top -----------------------------------------------------------------

    def test_write_blob_with_a_wrong_digest_leaves_nothing(self, storage, store):
        claimed = digest_of(b"what the client promised")
        with pytest.raises(DigestMismatch):
            store.write_blob(claimed, [b"what ", b"it sent"])
        assert not store.has_blob(claimed)
        assert list(storage.list_blobs()) == []
        assert [p for p in storage.scratch_dir().iterdir()] == []

    def test_write_blob_interrupted_leaves_nothing(self, storage, store):
        def chunks():
            yield b"half of it"
            raise ConnectionError("client went away")

        with pytest.raises(ConnectionError):
            store.write_blob(digest_of(b"half of it and the rest"), chunks())
        assert list(storage.list_blobs()) == []
        assert [p for p in storage.scratch_dir().iterdir()] == []

    def test_write_blob_reports_new_then_existing(self, store):
        data = b"x" * (3 << 20)
        digest = digest_of(data)
        assert store.write_blob(digest, [data[: 1 << 20], data[1 << 20 :]]) is True
        assert store.write_blob(digest, [data]) is False
        assert store.blob_size(digest) == len(data)

    def test_manifest_must_reference_stored_blobs(self, storage, store):
        manifest = self.make_model(store, b"weights")
        manifest.layers.append(mf.Layer(mf.SYSTEM, digest_of(b"not stored"), 10))
        with pytest.raises(BadRequest):
            store.write_manifest(ModelName.parse("tiny"), manifest)
        assert list(storage.list_manifests()) == []

    def test_names_match_case_insensitively_and_the_stored_case_wins(self, store):
        store.write_manifest(ModelName.parse("Tiny:Q4"), self.make_model(store, b"w"))
        assert store.get("tiny:q4").name.parts == ("registry.ollama.ai", "library", "Tiny", "Q4")
        store.write_manifest(ModelName.parse("TINY:q4"), self.make_model(store, b"w2"))
        assert [m.short_name for m in store.list()] == ["Tiny:Q4"]
        assert store.get("Tiny:Q4").model_layer.digest == digest_of(b"w2")

    def test_delete_collects_unshared_blobs_only(self, storage, store):
        shared = b"shared weights"
        first, second = ModelName.parse("first"), ModelName.parse("second")
        store.write_manifest(first, self.make_model(store, shared, b"only first"))
        store.write_manifest(second, self.make_model(store, shared))
        store.delete(first)
        assert store.get(first) is None
        assert store.has_blob(digest_of(shared))
        assert not store.has_blob(digest_of(b"only first"))
        store.delete(second)
        assert list(storage.list_blobs()) == [] and list(storage.list_manifests()) == []
        with pytest.raises(NotFound):
            store.delete(second)

    def test_copy_shares_blobs_until_both_are_gone(self, storage, store):
        source, copy = ModelName.parse("source"), ModelName.parse("team/copy:v1")
        store.write_manifest(source, self.make_model(store, b"weights"))
        store.copy(source, copy)
        assert store.get(copy).manifest_bytes == store.get(source).manifest_bytes
        store.delete(source)
        assert store.has_blob(digest_of(b"weights"))
        store.delete(copy)
        assert list(storage.list_blobs()) == []

    def test_a_corrupt_manifest_stops_garbage_collection(self, storage, store):
        name = ModelName.parse("kept")
        store.write_manifest(name, self.make_model(store, b"weights"))
        storage.write_manifest(ModelName.parse("broken").parts, b"{not json")
        assert [m.short_name for m in store.list()] == ["kept:latest"]  # the corrupt one is skipped
        blobs = set(storage.list_blobs())
        storage.delete_manifest(name.parts)
        assert store.collect_garbage(blobs) == []
        assert set(storage.list_blobs()) == blobs

    def test_prune_removes_old_unreferenced_blobs(self, storage, store):
        store.write_manifest(ModelName.parse("kept"), self.make_model(store, b"weights"))
        old = self.put(storage, b"old and unreferenced")
        young = self.put(storage, b"young and unreferenced")
        long_ago = time.time() - 7200
        os.utime(storage.blob_path(old), (long_ago, long_ago))
        assert store.prune(grace_seconds=3600) == [old]
        assert store.has_blob(young) and store.has_blob(digest_of(b"weights"))
