"""The s3 driver's own behaviour, beyond the storage contract (which runs it too): multipart
uploads, ranged reads, the blob cache, conditional manifest writes and sweeps that spare leased
blobs, all against moto's S3 server on loopback."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.errors import BadRequest, DigestMismatch
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit_s3store import cache as cache_module
from ollamakit_s3store import transfer

PART = 5 << 20  # S3's smallest part: uploads of a few parts stay quick


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    monkeypatch.setattr(transfer, "PART_SIZE", PART)  # downloads' ranges (uploads': s3_bucket)


@pytest.fixture
def make(s3_bucket, tmp_path, monkeypatch):
    """Kernels on the test's bucket, each with a models folder (its cache) of its own, as
    replicas on separate machines have."""
    kernels = []

    def make(name="a", **env):
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        kernel = make_kernel(Settings(models_dir=tmp_path / name, storage="s3"))
        kernel.storage  # built now, while the environment holds this kernel's settings
        kernels.append(kernel)
        return kernel

    yield make
    for kernel in kernels:
        kernel.close()


@pytest.fixture
def storage(make):
    return make().storage


def scratch(storage, data: bytes) -> Path:
    path = storage.scratch_dir() / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return path


def uploads_in_flight(storage) -> list:
    return storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])


def test_a_large_blob_goes_up_in_parts_and_comes_back_whole(storage, make):
    data = os.urandom(2 * PART + 12345)
    digest = digest_of(data)
    assert storage.put_blob(digest, scratch(storage, data)) is True
    head = storage.client.head_object(Bucket=storage.bucket, Key=f"blobs/sha256-{digest[7:]}")
    assert head["ETag"].strip('"').endswith("-3"), "a multipart object's ETag counts its parts"
    other = make("b").storage  # another replica: an empty cache, so this downloads
    path = other.blob_path(digest)
    assert path.read_bytes() == data and path.parent == other.cache.folder
    assert abs(path.stat().st_mtime - head["LastModified"].timestamp()) < 1, (
        "the copy carries the object's time"
    )


def test_a_part_upload_that_does_not_hash_to_its_digest_is_aborted(storage):
    data = os.urandom(2 * PART + 1)
    claimed = digest_of(data[:-1] + b"\x00")
    source = scratch(storage, data)
    with pytest.raises(DigestMismatch):
        storage.put_blob(claimed, source)
    assert not source.exists()
    assert list(storage.list_blobs()) == [] and uploads_in_flight(storage) == []
    assert not storage.cache.path(claimed).exists()


def test_a_failed_part_aborts_the_upload(storage, monkeypatch):
    data = os.urandom(2 * PART + 1)
    real = storage.client.upload_part
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["PartNumber"])
        if kwargs["PartNumber"] == 2:
            raise ConnectionError("network gone")
        return real(**kwargs)

    monkeypatch.setattr(storage.client, "upload_part", flaky)
    with pytest.raises(ConnectionError):
        storage.put_blob(digest_of(data), scratch(storage, data))
    assert 2 in calls and uploads_in_flight(storage) == [] and list(storage.list_blobs()) == []


def test_two_replicas_uploading_one_blob_make_one_new(make):
    data = os.urandom(PART + 7)
    digest = digest_of(data)
    replicas = [make(name).storage for name in "abcd"]
    barrier = threading.Barrier(len(replicas))

    def put(storage):
        source = scratch(storage, data)
        barrier.wait()
        return storage.put_blob(digest, source)

    with ThreadPoolExecutor(len(replicas)) as pool:
        results = list(pool.map(put, replicas))
    assert results.count(True) == 1, results
    assert uploads_in_flight(replicas[0]) == []
    with replicas[0].open_blob(digest) as fh:
        assert fh.read() == data


def test_ranged_reads_stream_without_filling_the_cache(storage, make):
    data = os.urandom(3 << 20)
    digest = digest_of(data)
    storage.put_blob(digest, scratch(storage, data))
    other = make("b").storage
    with other.open_blob(digest) as fh:
        fh.seek(1_000_000)
        assert fh.read(10) == data[1_000_000:1_000_010]
        fh.seek(-5, os.SEEK_END)
        assert fh.read() == data[-5:]
        fh.seek(0)
        assert fh.read() == data
    assert other.cache.get(digest) is None
    with pytest.raises(FileNotFoundError):
        other.open_blob(digest_of(b"absent"))


def test_a_corrupt_object_is_never_cached(storage, make):
    data = b"the real bytes" * 1000
    digest = digest_of(data)
    storage.client.put_object(
        Bucket=storage.bucket, Key=f"blobs/sha256-{digest[7:]}", Body=data[:-1] + b"!"
    )
    other = make("b").storage
    with pytest.raises(DigestMismatch):
        other.blob_path(digest)
    assert not other.cache.path(digest).exists()
    assert [p.name for p in other.scratch_dir().iterdir()] == []


def test_concurrent_loads_of_one_blob_download_it_once(storage, make, monkeypatch):
    data = os.urandom(PART * 2)
    digest = digest_of(data)
    storage.put_blob(digest, scratch(storage, data))
    other = make("b").storage
    downloads = []
    real = transfer.download_to
    monkeypatch.setattr("ollamakit_s3store.download_to", lambda *a: downloads.append(1) or real(*a))
    with ThreadPoolExecutor(6) as pool:
        paths = set(pool.map(lambda _: other.blob_path(digest), range(6)))
    assert len(paths) == 1 and len(downloads) == 1
    assert paths.pop().read_bytes() == data


def test_the_cache_keeps_its_bound_least_recently_used_first(storage, make, monkeypatch):
    monkeypatch.setattr(cache_module, "PIN_SECONDS", 0.0)
    blobs = [os.urandom(100_000) for _ in range(4)]
    digests = [digest_of(b) for b in blobs]
    for data in blobs:
        storage.put_blob(digest_of(data), scratch(storage, data))
    other = make("b", OLLAMAKIT_S3_CACHE_SIZE=250_000).storage
    other.blob_path(digests[0])
    other.blob_path(digests[1])
    other.blob_path(digests[0])  # used again: digests[1] is now the least recent
    other.blob_path(digests[2])
    cached = {d for d in digests if other.cache.path(d).exists()}
    assert cached == {digests[0], digests[2]} and other.cache.size <= 250_000


def test_a_blob_in_use_is_never_evicted(storage, make, monkeypatch):
    monkeypatch.setattr(cache_module, "PIN_SECONDS", 0.0)
    blobs = [os.urandom(100_000) for _ in range(3)]
    for data in blobs:
        storage.put_blob(digest_of(data), scratch(storage, data))
    other = make("b", OLLAMAKIT_S3_CACHE_SIZE=150_000).storage
    import mmap

    with open(other.blob_path(digest_of(blobs[0])), "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # as the engine maps weights
    try:
        other.blob_path(digest_of(blobs[1]))
        other.blob_path(digest_of(blobs[2]))
        assert other.cache.path(digest_of(blobs[0])).exists(), "the mapped blob was evicted"
        assert mapped[:100] == blobs[0][:100]
        assert not other.cache.path(digest_of(blobs[1])).exists()
    finally:
        mapped.close()


def test_the_cache_survives_a_restart_and_serves_without_the_network(storage, make, monkeypatch):
    data = os.urandom(50_000)
    digest = digest_of(data)
    storage.put_blob(digest, scratch(storage, data))
    first = make("b").storage
    path = first.blob_path(digest)
    again = make("b").storage  # the same models folder: a restarted replica
    monkeypatch.setattr(again.client, "get_object", None)  # any download would fail
    assert again.blob_path(digest) == path and path.read_bytes() == data


def test_prune_reads_object_times_without_fetching_blobs(make):
    kernel = make("a", OLLAMAKIT_S3_GC_GRACE=3600)
    storage = kernel.storage
    data = b"unreferenced" * 100
    digest = digest_of(data)
    storage.client.put_object(Bucket=storage.bucket, Key=f"blobs/sha256-{digest[7:]}", Body=data)
    assert kernel.store.prune(grace_seconds=3600) == []  # young
    assert kernel.store.prune(grace_seconds=-1) == [digest]
    assert not storage.cache.path(digest).exists()


def manifest_over(store, *payloads: bytes) -> mf.Manifest:
    config = mf.Layer(mf.CONFIG_MEDIA_TYPE, *store.add_bytes(b'{"model_format":"gguf"}'))
    return mf.Manifest(config, [mf.Layer(mf.MODEL, *store.add_bytes(p)) for p in payloads])


PARTS = ("registry.ollama.ai", "library", "tiny", "latest")
KEY = "manifests/" + "/".join(PARTS)


def spy_on(storage, monkeypatch, operation: str) -> list[dict]:
    """The conditions each call of ``operation`` on a manifest sent."""
    sent, real = [], getattr(storage.client, operation)

    def spy(**kwargs):
        if kwargs["Key"] == KEY:
            sent.append({k: v for k, v in kwargs.items() if k.startswith("If")})
        return real(**kwargs)

    monkeypatch.setattr(storage.client, operation, spy)
    return sent


def test_manifest_writes_are_conditional_on_the_version_seen(storage, monkeypatch):
    puts = spy_on(storage, monkeypatch, "put_object")
    storage.write_manifest(PARTS, b"first")
    first = storage.client.head_object(Bucket=storage.bucket, Key=KEY)["ETag"]
    storage.write_manifest(PARTS, b"second")
    assert puts == [{"IfNoneMatch": "*"}, {"IfMatch": first}]


def test_a_write_that_loses_the_race_is_refused_and_made_again_on_what_won(make, monkeypatch):
    mine, theirs = make("a").storage, make("b").storage
    mine.write_manifest(PARTS, b"old")
    assert mine.read_manifest(PARTS) == b"old"  # the kernel reads a name before replacing it
    theirs.write_manifest(PARTS, b"another replica's")  # ... and another replica writes meanwhile
    puts = spy_on(mine, monkeypatch, "put_object")
    mine.write_manifest(PARTS, b"mine")
    assert len(puts) == 2 and puts[0]["IfMatch"] != puts[1]["IfMatch"], (
        "the stale write was refused (412)"
    )
    assert theirs.read_manifest(PARTS) == b"mine"


def test_a_create_racing_another_create_of_a_new_name_is_refused_then_replaces_it(
    make, monkeypatch
):
    mine, theirs = make("a").storage, make("b").storage
    assert mine.read_manifest(PARTS) is None
    theirs.write_manifest(PARTS, b"theirs")
    puts = spy_on(mine, monkeypatch, "put_object")
    mine.write_manifest(PARTS, b"mine")
    assert puts[0] == {"IfNoneMatch": "*"} and "IfMatch" in puts[1]
    assert theirs.read_manifest(PARTS) == b"mine"


def test_a_delete_never_removes_a_version_it_did_not_see(make, monkeypatch):
    mine, theirs = make("a").storage, make("b").storage
    mine.write_manifest(PARTS, b"old")
    assert mine.read_manifest(PARTS) == b"old"
    theirs.write_manifest(PARTS, b"rewritten")
    deletes = spy_on(mine, monkeypatch, "delete_object")
    mine.delete_manifest(PARTS)
    assert len(deletes) == 2 and deletes[0]["IfMatch"] != deletes[1]["IfMatch"], (
        "the stale delete was refused"
    )
    assert theirs.read_manifest(PARTS) is None


def test_writes_racing_on_one_name_all_land_whole(make):
    replicas = [make(name).storage for name in "abc"]
    payloads = {os.urandom(8).hex().encode() * 1000 for _ in range(30)}

    def write(item):
        index, data = item
        replicas[index % 3].write_manifest(PARTS, data)

    with ThreadPoolExecutor(9) as pool:
        list(pool.map(write, enumerate(payloads)))
    assert replicas[0].read_manifest(PARTS) in payloads


def test_a_sweep_spares_a_blob_another_replica_is_referencing(make):
    writer, sweeper = make("a"), make("b")
    data = b"weights shared by a model being deleted and one being written"
    manifest = manifest_over(writer.store, data)
    digest = digest_of(data)
    name = f"sha256-{digest[7:]}"
    writer.storage.leases.take(name)  # the writer is between its check and its manifest
    assert sweeper.store.collect_garbage([digest]) == [digest]  # the kernel asked ...
    assert sweeper.storage.has_blob(digest), "... and the driver kept the leased blob"
    writer.store.write_manifest(ModelName.parse("kept"), manifest)
    assert writer.store.get("kept") is not None


def test_a_lease_expires_after_the_grace_period(make):
    writer, sweeper = make("a"), make("b", OLLAMAKIT_S3_GC_GRACE=1)
    data = b"weights of an abandoned create"
    digest = digest_of(data)
    writer.store.add_bytes(data)
    writer.storage.leases.take(f"sha256-{digest[7:]}")
    sweeper.storage.delete_blob(digest)
    assert sweeper.storage.has_blob(digest)
    time.sleep(2.1)
    sweeper.storage.delete_blob(digest)
    assert not sweeper.storage.has_blob(digest)
    leases = sweeper.storage.client.list_objects_v2(Bucket=sweeper.storage.bucket, Prefix="leases/")
    assert leases.get("KeyCount", 0) == 0, "the expired lease went with it"


def test_a_blob_swept_before_the_lease_is_put_back_from_the_cache(make):
    writer, sweeper = make("a"), make("b")
    data = b"weights the writer has locally"
    manifest = manifest_over(writer.store, data)
    digest = digest_of(data)
    sweeper.storage.delete_blob(digest)  # swept between the kernel's check and the lease
    assert not writer.storage.has_blob(digest)
    writer.storage.write_manifest(ModelName.parse("kept").parts, manifest.to_bytes())
    assert writer.storage.has_blob(digest)


def test_a_manifest_over_a_swept_blob_nobody_has_is_refused(make, monkeypatch):
    monkeypatch.setattr(cache_module, "PIN_SECONDS", 0.0)
    writer, sweeper = make("a"), make("b")
    manifest = manifest_over(writer.store, b"weights")
    digest = digest_of(b"weights")
    writer.storage.cache.discard(digest)
    sweeper.storage.delete_blob(digest)
    with pytest.raises(BadRequest):
        writer.storage.write_manifest(ModelName.parse("broken").parts, manifest.to_bytes())
    assert list(writer.storage.list_manifests()) == []


def test_start_up_aborts_uploads_left_by_a_replica_that_died(make):
    storage = make("a", OLLAMAKIT_S3_GC_GRACE=0).storage
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key="blobs/sha256-" + "a" * 64)
    time.sleep(1.1)
    storage.remove_leftovers()
    assert uploads_in_flight(storage) == []


def test_without_a_bucket_the_driver_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.delenv("OLLAMAKIT_S3_BUCKET", raising=False)
    with pytest.raises(ValueError, match="OLLAMAKIT_S3_BUCKET"):
        make_kernel(Settings(models_dir=tmp_path, storage="s3")).storage


def test_a_bucket_that_cannot_be_used_is_named_at_start(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_S3_BUCKET", "no-such-bucket")
    with pytest.raises(ValueError, match="no-such-bucket"):
        make_kernel(Settings(models_dir=tmp_path, storage="s3")).storage


def test_the_test_server_makes_conditional_writes_atomic(s3_server, s3_bucket):
    """What the driver relies on, as S3 guarantees it: of racing If-None-Match completions of
    one key exactly one succeeds. (moto's own server lets several through with parts this
    large: its check and its write are apart.)"""
    client = s3_server.client
    part = os.urandom(PART + 1)

    def race(contenders: int) -> int:
        client.delete_object(Bucket=s3_bucket, Key="contended")
        barrier = threading.Barrier(contenders)

        def complete(_) -> bool:
            upload = client.create_multipart_upload(Bucket=s3_bucket, Key="contended")["UploadId"]
            etag = client.upload_part(
                Bucket=s3_bucket, Key="contended", UploadId=upload, PartNumber=1, Body=part
            )["ETag"]
            barrier.wait()
            try:
                client.complete_multipart_upload(
                    Bucket=s3_bucket,
                    Key="contended",
                    UploadId=upload,
                    IfNoneMatch="*",
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
                )
                return True
            except client.exceptions.ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
                client.abort_multipart_upload(Bucket=s3_bucket, Key="contended", UploadId=upload)
                return False

        with ThreadPoolExecutor(contenders) as pool:
            return list(pool.map(complete, range(contenders))).count(True)

    assert [race(4) for _ in range(3)] == [1, 1, 1]


@pytest.mark.parametrize(
    "text, size",
    [("100", 100), ("4K", 4096), ("2 GiB", 2 << 30), ("1t", 1 << 40), (" 5MB ", 5 << 20)],
)
def test_cache_sizes_read_as_people_write_them(text, size):
    from ollamakit_s3store import parse_size

    assert parse_size(text) == size


def test_a_cache_size_that_is_not_one_is_refused(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_S3_CACHE_SIZE", "lots")
    with pytest.raises(ValueError, match="OLLAMAKIT_S3_CACHE_SIZE|not a size"):
        make_kernel(Settings(models_dir=tmp_path, storage="s3")).storage


@pytest.mark.parametrize("size", ["4M", "lots"])
def test_a_part_size_s3_would_refuse_is_refused_at_start(s3_bucket, tmp_path, monkeypatch, size):
    monkeypatch.setenv("OLLAMAKIT_S3_PART_SIZE", size)
    with pytest.raises(ValueError, match="OLLAMAKIT_S3_PART_SIZE|not a size"):
        make_kernel(Settings(models_dir=tmp_path, storage="s3")).storage


def test_a_prefix_keeps_a_store_in_its_own_folder_of_the_bucket(make):
    inside = make("a", OLLAMAKIT_S3_PREFIX="/teams/alpha/")
    outside = make("b", OLLAMAKIT_S3_PREFIX="")
    manifest = manifest_over(inside.store, b"weights")
    inside.store.write_manifest(ModelName.parse("tiny"), manifest)
    keys = [
        item["Key"]
        for item in inside.storage.client.list_objects_v2(Bucket=inside.storage.bucket)["Contents"]
    ]
    assert f"teams/alpha/blobs/sha256-{digest_of(b'weights')[7:]}" in keys
    assert "teams/alpha/manifests/registry.ollama.ai/library/tiny/latest" in keys
    assert all(key.startswith("teams/alpha/") for key in keys)
    assert [m.short_name for m in inside.store.list()] == ["tiny:latest"]
    assert outside.store.list() == [] and list(outside.storage.list_blobs()) == []


def test_names_differing_in_case_created_at_once_on_two_replicas_make_one_manifest(make):
    replicas = [make("a"), make("b")]
    manifest = manifest_over(replicas[0].store, b"weights")
    spellings = [("Tiny", "tiny"), ("MODEL:Q4", "model:q4"), ("a/Mixed:Tag", "A/mixed:TAG")]
    for first, second in spellings:
        barrier = threading.Barrier(2)

        def create(item):
            replica, spelling = item
            barrier.wait()
            replica.store.write_manifest(ModelName.parse(spelling), manifest)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(create, zip(replicas, (first, second))))
        keys = [
            parts
            for parts, _ in replicas[0].storage.list_manifests()
            if ModelName(*parts).key() == ModelName.parse(first).key()
        ]
        assert len(keys) == 1, f"{first} and {second} made {keys}"
        for replica in replicas:
            for spelling in (first, second):
                assert replica.store.get(spelling).name.parts == keys[0]


def test_a_deleted_name_can_be_made_again_in_another_case(make):
    kernel = make()
    manifest = manifest_over(kernel.store, b"weights")
    kernel.store.write_manifest(ModelName.parse("Tiny"), manifest)
    kernel.store.delete(ModelName.parse("tiny"))  # its blobs go too
    kernel.store.write_manifest(ModelName.parse("TINY"), manifest_over(kernel.store, b"weights"))
    assert [m.short_name for m in kernel.store.list()] == ["TINY:latest"]


def test_a_model_header_is_read_by_ranges_without_downloading_the_blob(make, tmp_path, monkeypatch):
    import numpy as np

    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing.gguf_factory import tiny_llama

    writer, reader = make("a"), make("b")  # the reader is a replica that never ran it
    model = tiny_llama(tmp_path / "m.gguf", n_embd=256, n_ff=1024, dtype=np.float16)
    data = model.read_bytes()
    digest = digest_of(data)
    assert writer.store.write_blob(digest, [data]) is True
    fetched = []
    readinto = transfer.RangedReader.readinto

    def counting(self, buffer):
        n = readinto(self, buffer)
        fetched.append(n)
        return n

    monkeypatch.setattr(transfer.RangedReader, "readinto", counting)
    header = reader.store.model_header(digest)
    with GGUFFile.open(model) as whole:
        assert header.metadata == whole.metadata
        assert [t.name for t in header.tensors] == [t.name for t in whole.tensors]
        assert header.parameter_count == whole.parameter_count
    assert 0 < sum(fetched) <= 1 << 20 < len(data)  # the first read held the whole header
    assert reader.storage.cache.get(digest) is None  # and nothing was cached


def test_a_streamed_blob_holds_a_bounded_number_of_parts(storage, monkeypatch):
    monkeypatch.setattr(transfer, "CONCURRENCY", 2)
    live = most = 0
    lock = threading.Lock()
    upload_part = transfer.MultipartWriter._upload_part

    def slow(self, number, data):
        nonlocal live, most
        with lock:
            live += 1
            most = max(most, live)
        time.sleep(0.1)  # a slow network: the writer must wait rather than gather more
        try:
            return upload_part(self, number, data)
        finally:
            with lock:
                live -= 1

    monkeypatch.setattr(transfer.MultipartWriter, "_upload_part", slow)
    data = os.urandom(6 * PART + 1)
    digest = digest_of(data)
    with storage.blob_writer(digest) as out:  # no size given: parts of the configured size
        for start in range(0, len(data), 1 << 20):
            out.write(data[start : start + (1 << 20)])
            assert out._gathered <= PART and len(out._in_flight) <= 2
        assert out.commit() is True
    assert most == 2
    with storage.open_blob(digest) as fh:
        assert fh.read() == data
