"""The ``http`` transport's hashing scratch files, and the store adopting them, without a server."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from ollamakit import drivers
from ollamakit.blobs import BlobWriter
from ollamakit.config import Settings
from ollamakit.digests import is_digest
from ollamakit.errors import DigestMismatch
from ollamakit.kernel import make_kernel
from ollamakit_http import scratch
from ollamakit_http.scratch import ScratchFiles


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=sorted(drivers.driver_names("storage")))
def store(request, tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path / "models", storage=request.param))
    yield kernel.store
    kernel.close()


@pytest.fixture
def scratch_files(store):
    return ScratchFiles(store)


def pieces(count: int, size: int = 64 * 1024) -> list[bytes]:
    return [os.urandom(size - i) for i in range(count)]  # uneven sizes


def scratch_folder(store) -> list[Path]:
    """The scratch files left; ``fs`` keeps them among its blobs, as Ollama does."""
    return sorted(p for p in Path(store.storage.scratch_dir()).iterdir() if not is_digest(p.name))


def test_hashes_and_writes_every_piece(scratch_files, store):
    data = pieces(3 * scratch.QUEUED_PIECES)  # more than the hash queue holds at once
    body = scratch_files.create()
    for piece in data:
        body.append(piece)
    whole = b"".join(data)
    received = body.finish()
    assert (received.size, received.sha256, len(body)) == (
        len(whole),
        hashlib.sha256(whole).hexdigest(),
        len(whole),
    )
    assert received.path.read_bytes() == whole
    assert body.getfile().read() == whole  # wsgi.input, for apps that do not know the key
    body.close()
    assert scratch_folder(store) == []


@pytest.mark.timeout(30)
def test_close_mid_body_removes_the_file_at_once(scratch_files, store):
    body = scratch_files.create()
    for piece in pieces(3 * scratch.QUEUED_PIECES):
        body.append(piece)
    body.close()  # no finish: the connection went away
    body.append(b"late data from the same socket read is ignored")
    assert scratch_folder(store) == []
    body.close()  # closing twice is harmless


def test_adopted_file_becomes_the_blob_and_close_leaves_it(scratch_files, store):
    data = os.urandom(300_000)
    body = scratch_files.create()
    body.append(data)
    received = body.finish()
    assert store.adopt_blob(digest_of(data), received.path, received.sha256) is True
    # A later scratch file that happens to get the same name is not this upload's to remove.
    received.path.write_bytes(b"someone else's")
    body.close()
    assert received.path.read_bytes() == b"someone else's"
    received.path.unlink()
    with store.storage.open_blob(digest_of(data)) as fh:
        assert fh.read() == data
    assert scratch_folder(store) == []


def test_adopting_a_mismatch_consumes_the_file_and_stores_nothing(scratch_files, store):
    body = scratch_files.create()
    body.append(b"actual bytes")
    received = body.finish()
    claimed = digest_of(b"claimed bytes")
    with pytest.raises(DigestMismatch):
        store.adopt_blob(claimed, received.path, received.sha256)
    assert not received.path.exists()
    assert list(store.storage.list_blobs()) == []
    body.close()


def test_adopt_refuses_a_file_outside_the_scratch_folder(store, tmp_path):
    outside = tmp_path / "precious"
    outside.write_bytes(b"x")
    with pytest.raises(ValueError):
        store.adopt_blob(digest_of(b"x"), outside, hashlib.sha256(b"x").hexdigest())
    assert outside.read_bytes() == b"x"
    assert list(store.storage.list_blobs()) == []


def test_a_failed_write_is_reported_when_the_body_is_read(scratch_files, store, monkeypatch):
    body = scratch_files.create()

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scratch.os, "write", full_disk)
    body.append(b"never stored")
    with pytest.raises(OSError):
        body.finish()
    with pytest.raises(OSError, match="No space left"):
        body.getfile().read()
    body.close()
    assert scratch_folder(store) == []


def test_shutdown_closes_what_is_still_open(scratch_files, store):
    bodies = [scratch_files.create() for _ in range(3)]
    bodies[0].append(b"half an upload")
    scratch_files.close_all()
    assert scratch_folder(store) == []


def test_no_scratch_folder_means_waitress_keeps_the_body():
    class NoScratch:
        def scratch_file(self, suffix=""):
            raise NotImplementedError("this driver keeps no local files")

    assert ScratchFiles(NoScratch()).create() is None


def test_sigterm_during_create_still_removes_the_new_file(scratch_files, store, monkeypatch):
    """The SIGTERM handler runs between any two steps of the loop thread, also inside create:
    it must wait for the file it interrupted to be registered, then remove it too."""
    ended = []

    class Interrupted(scratch.HashingScratchFile):
        def __init__(self, *args):
            scratch_files.unlink_all_then(lambda: ended.append(scratch_folder(store)))
            assert not ended  # deferred: this file is not registered yet
            super().__init__(*args)

    monkeypatch.setattr(scratch, "HashingScratchFile", Interrupted)
    body = scratch_files.create()
    assert ended == [[]]  # ran once create was done, after the file was removed
    body.close()


def test_a_blob_upload_reaches_a_store_that_streams_while_it_arrives(scratch_files, store):
    data = pieces(3 * scratch.QUEUED_PIECES)
    whole = b"".join(data)
    digest = digest_of(whole)
    body = scratch_files.create(digest, len(whole))
    for piece in data:
        body.append(piece)
    received = body.finish()
    assert received.sha256 == digest[7:]
    if store.storage.streams_uploads:  # the writer has every byte; the app only commits
        assert received.blob is not None and received.blob.size == len(whole)
        assert received.blob.commit() is True
    else:  # a local store links the file in
        assert received.blob is None
        assert store.adopt_blob(digest, received.path, received.sha256) is True
    body.close()
    with store.storage.open_blob(digest) as fh:
        assert fh.read() == whole
    assert scratch_folder(store) == []


class FailingWriter(BlobWriter):
    """A writer whose store fails after its first piece (the network went away)."""

    aborted = False

    def _send(self, data: bytes) -> None:
        if self.size:
            raise ConnectionError("the store went away")

    def _commit(self) -> bool:
        raise AssertionError("never committed")

    def _abort(self) -> None:
        FailingWriter.aborted = True


def test_a_writer_that_fails_midway_leaves_the_upload_to_the_file(tmp_path, monkeypatch):
    kernel = make_kernel(Settings(models_dir=tmp_path / "models", storage="fs"))
    try:
        storage = kernel.storage
        monkeypatch.setattr(storage, "streams_uploads", True, raising=False)
        monkeypatch.setattr(storage, "blob_writer", lambda digest, size: FailingWriter(digest))
        # Reads smaller than the body, so the writer gets a second piece however late the
        # helper starts (it could otherwise read the whole body at once, and never fail).
        monkeypatch.setattr(scratch, "FORWARD_READ", 64 * 1024)
        data = pieces(20)
        whole = b"".join(data)
        body = ScratchFiles(kernel.store).create(digest_of(whole), len(whole))
        for piece in data:
            body.append(piece)
        received = body.finish()
        assert received.blob is None and FailingWriter.aborted
        assert received.sha256 == digest_of(whole)[7:]  # hashed again from the file's start
        assert kernel.store.adopt_blob(digest_of(whole), received.path, received.sha256) is True
        body.close()
    finally:
        kernel.close()
