"""``ollamakit.store.ModelStore`` on the file-system driver: a blob is stored only whole and only
under its own digest, manifest writes are atomic, names match without case, and garbage
collection never deletes what a manifest still needs."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from ollamakit import manifest as mf
from ollamakit.errors import BadRequest, DigestMismatch, InvalidDigest, NotFound, StoreNotWritable
from ollamakit.names import ModelName
from ollamakit.store import writing


BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}\Z")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def leftovers(kernel) -> list[Path]:
    """Files in the store that are neither blobs nor manifests: scratch files, half-written ones."""
    root = kernel.settings.models_dir
    scratch = list(Path(kernel.storage.scratch_dir()).iterdir())
    strays = [p for p in (root / "blobs").iterdir() if p.is_file() and not BLOB_NAME.match(p.name)]
    manifests = root / "manifests"
    temps = [
        p for p in manifests.rglob("*") if p.is_file() and len(p.relative_to(manifests).parts) != 4
    ]
    return scratch + strays + temps


def store_model(store, name: str, *contents: bytes) -> mf.Manifest:
    """A model whose config is the first of ``contents`` and whose layers are the rest."""
    layers = []
    for data in contents:
        digest, size = store.add_bytes(data)
        layers.append(mf.Layer(mf.MODEL, digest, size))
    config = layers.pop(0)
    manifest = mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, config.digest, config.size), layers)
    store.write_manifest(ModelName.parse(name), manifest)
    return manifest


# -- blobs --------------------------------------------------------------------------------------


def test_a_blob_is_stored_under_its_digest_once(kernel):
    store, data = kernel.store, b"weights" * 1000
    assert store.write_blob(sha(data), [data[:10], data[10:]]) is True
    assert store.write_blob(sha(data), [data]) is False  # already there
    assert store.blob_path(sha(data)).read_bytes() == data
    assert store.blob_size(sha(data)) == len(data)
    assert leftovers(kernel) == []


def test_bytes_that_do_not_match_their_digest_are_not_stored(kernel):
    store = kernel.store
    claimed = sha(b"what the client said")
    with pytest.raises(DigestMismatch) as caught:
        store.write_blob(claimed, [b"what it sent"])
    assert caught.value.got == sha(b"what it sent")
    assert not store.has_blob(claimed) and not store.has_blob(sha(b"what it sent"))
    assert leftovers(kernel) == []


def test_an_upload_that_breaks_off_leaves_nothing(kernel):
    def chunks():
        yield b"first half"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        kernel.store.write_blob(sha(b"first half and the rest"), chunks())
    assert not kernel.store.has_blob(sha(b"first half and the rest"))
    assert leftovers(kernel) == []


@pytest.mark.parametrize(
    "digest",
    [
        "../../etc/passwd",
        "sha256:abc",
        "sha256:" + "0" * 63 + "g",
        "sha256:" + "0" * 64 + "\n",
        "md5:" + "0" * 32,
        "",
    ],
)
def test_what_is_not_a_digest_never_becomes_a_path(kernel, digest):
    for call in (kernel.store.has_blob, kernel.store.blob_path, kernel.store.blob_size):
        with pytest.raises(InvalidDigest):
            call(digest)
    with pytest.raises(InvalidDigest):
        kernel.store.write_blob(digest, [b"x"])


def test_a_file_name_form_digest_means_the_same_blob(kernel):
    digest, _ = kernel.store.add_bytes(b"data")
    assert kernel.store.has_blob(digest.replace(":", "-"))


def test_small_blobs_are_read_within_a_bound(kernel):
    digest, _ = kernel.store.add_bytes(b"x" * 100)
    assert kernel.store.read_small_blob(digest, limit=100) == b"x" * 100
    with pytest.raises(BadRequest, match="more than 99 allowed"):
        kernel.store.read_small_blob(digest, limit=99)
    with pytest.raises(NotFound):
        kernel.store.read_small_blob(sha(b"absent"))


def test_only_the_stores_own_scratch_files_are_adopted(kernel, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"data")
    with pytest.raises(ValueError, match="not a scratch file"):
        kernel.store.adopt_blob(sha(b"data"), outside, hashlib.sha256(b"data").hexdigest())
    assert outside.read_bytes() == b"data"  # left alone
    scratch = kernel.store.scratch_file()
    scratch.write_bytes(b"data")
    assert (
        kernel.store.adopt_blob(sha(b"data"), scratch, hashlib.sha256(b"data").hexdigest()) is True
    )
    assert not scratch.exists() and kernel.store.has_blob(sha(b"data"))


# -- manifests ----------------------------------------------------------------------------------


def test_a_manifest_naming_a_missing_blob_is_refused(kernel):
    config, _ = kernel.store.add_bytes(b"{}")
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config, 2), [mf.Layer(mf.MODEL, sha(b"absent"), 6)]
    )
    with pytest.raises(BadRequest, match="missing blob"):
        kernel.store.write_manifest(ModelName.parse("m"), manifest)
    assert kernel.store.list() == []


def test_names_match_without_case_and_keep_their_first_spelling(kernel):
    store = kernel.store
    store_model(store, "Team/Model:Tag", b"{}", b"one")
    store_model(store, "team/model:tag", b"{}", b"two")  # the same model, written again
    [model] = store.list()
    assert model.name.parts[1:] == ("Team", "Model", "Tag")
    assert store.get("TEAM/MODEL:TAG").manifest.layers[0].digest == sha(b"two")
    assert store.get("team/model") is None  # another tag
    assert store.get("no such/name/at/all") is None


def test_a_manifest_is_replaced_whole_or_not_at_all(kernel, monkeypatch):
    store = kernel.store
    before = store_model(store, "m", b"{}", b"one")
    path = (
        kernel.settings.models_dir / "manifests" / "registry.ollama.ai" / "library" / "m" / "latest"
    )
    old_bytes = path.read_bytes()

    def crash(source, destination):
        raise OSError(errno.EIO, "the disk went away mid-write")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store_model(store, "m", b"{}", b"two")
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert store.get("m").manifest == before
    assert list(path.parent.iterdir()) == [path]  # and no half-written file beside it
    assert leftovers(kernel) == []


def test_copy_shares_the_blobs(kernel):
    manifest = store_model(kernel.store, "a", b"{}", b"weights")
    kernel.store.copy(ModelName.parse("a"), ModelName.parse("b"))
    assert kernel.store.get("b").manifest == manifest
    with pytest.raises(NotFound):
        kernel.store.copy(ModelName.parse("absent"), ModelName.parse("c"))


# -- garbage ------------------------------------------------------------------------------------


def test_delete_removes_only_the_blobs_no_other_model_needs(kernel):
    store = kernel.store
    store_model(store, "a", b"{}", b"shared", b"only a")
    store_model(store, "b", b"{}", b"shared")
    store.delete(ModelName.parse("a"))
    assert store.get("a") is None
    assert store.has_blob(sha(b"shared")) and store.has_blob(sha(b"{}"))
    assert not store.has_blob(sha(b"only a"))
    with pytest.raises(NotFound):
        store.delete(ModelName.parse("a"))


def test_a_corrupt_manifest_stops_all_deleting(kernel):
    store = kernel.store
    store_model(store, "a", b"{}", b"only a")
    store_model(store, "b", b"{}", b"only b")
    path = (
        kernel.settings.models_dir / "manifests" / "registry.ollama.ai" / "library" / "b" / "latest"
    )
    path.write_bytes(b"{not json")
    assert [m.short_name for m in store.list()] == ["a:latest"]  # listed without it
    store.delete(ModelName.parse("a"))
    # b's manifest cannot say what it needs, so nothing is collected
    assert store.has_blob(sha(b"only a")) and store.has_blob(sha(b"only b"))
    assert store.prune(grace_seconds=0) == []


def test_pruning_keeps_young_and_referenced_blobs(kernel):
    store = kernel.store
    store_model(store, "a", b"{}", b"used")
    old, _ = store.add_bytes(b"old and unused")
    young, _ = store.add_bytes(b"young and unused")
    an_hour_ago = time.time() - 7200
    for digest in (old, sha(b"used"), sha(b"{}")):
        os.utime(store.blob_path(digest), (an_hour_ago, an_hour_ago))
    assert store.prune(grace_seconds=3600) == [old]
    assert store.has_blob(young) and store.has_blob(sha(b"used"))


# -- a store that cannot be written ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left on device"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_an_unwritable_store_is_said_in_words_without_the_path(code, reason):
    with pytest.raises(StoreNotWritable) as caught:
        with writing("test"):
            raise OSError(code, os.strerror(code), "/secret/models/blobs/x")
    assert caught.value.message == f"cannot write to the model store: {reason}"
    assert caught.value.status == 507  # Insufficient Storage


def test_other_os_errors_pass_through():
    with pytest.raises(FileNotFoundError):
        with writing("test"):
            raise FileNotFoundError(errno.ENOENT, "gone")
