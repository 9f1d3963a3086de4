"""Blob writers: one blob on its way into a ``Storage``, fed in order, hashed as it goes, and
named only if its bytes hash to the digest it was opened for (``Storage.blob_writer``).

A writer is a context manager. Leaving it without ``commit`` (an exception from the source, a
client that went away) aborts it, and so does a commit whose bytes hash to another digest:
an aborted writer leaves nothing behind. Two writers of one digest may run at once; each
commits or finds the blob there, and exactly one reports it as new.

``FileBlobWriter`` is the default every driver inherits: a temporary file in the driver's
``scratch_dir``, handed to ``put_blob`` once verified and on disk. A driver that can send the
bytes on as they come (a remote store) writes its own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .digests import parse_digest
from .errors import DigestMismatch

if TYPE_CHECKING:
    from .interfaces import Storage

# Ollama's prefix for the temporary files of blobs (``os.CreateTemp(blobs, "sha256-")``). What
# follows it is random and short, never the 64 hex digits of a blob's own name.
SCRATCH_PREFIX = "sha256-"


class BlobWriter(ABC):
    """Bytes in through ``write``, in order; ``commit`` verifies and names the blob."""

    def __init__(self, digest: str):
        self.digest = parse_digest(digest)
        self.size = 0
        self._sha = hashlib.sha256()
        self._state = "open"  # then "committed" or "aborted"

    @property
    def sha256(self) -> str:
        """The lowercase hex SHA-256 of what has been written so far."""
        return self._sha.hexdigest()

    def write(self, data: bytes) -> None:
        if self._state != "open":
            raise ValueError(f"write to a blob writer that is {self._state}")
        # The driver starts moving the bytes first (a thread or the network may take them
        # while this thread hashes: hashlib releases the GIL on large buffers).
        self._send(data)
        self._sha.update(data)
        self.size += len(data)

    def commit(self) -> bool:
        """Name the blob if what was written hashes to its digest; True when it is new.
        A mismatch aborts and raises ``DigestMismatch``; so does any failure to commit."""
        if self._state != "open":
            raise ValueError(f"commit of a blob writer that is {self._state}")
        got = "sha256:" + self._sha.hexdigest()
        try:
            if got != self.digest:
                raise DigestMismatch(self.digest, got)
            new = self._commit()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return new

    def abort(self) -> None:
        """Drop everything written; nothing of it stays. Harmless after a commit or an abort."""
        if self._state == "open":
            self._state = "aborted"
            self._abort()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()

    # -- what a driver writes

    @abstractmethod
    def _send(self, data: bytes) -> None:
        """Take the next bytes (they are hashed by the caller)."""

    @abstractmethod
    def _commit(self) -> bool:
        """Make the verified bytes the blob, atomically; True when it was not there yet."""

    @abstractmethod
    def _abort(self) -> None:
        """Remove whatever was written."""


class FileBlobWriter(BlobWriter):
    """A temporary file in ``storage.scratch_dir()``, moved in by ``storage.put_blob`` once it
    is verified and on disk (after a crash a blob is whole or absent)."""

    def __init__(self, storage: Storage, digest: str):
        super().__init__(digest)
        self.storage = storage
        fd, name = tempfile.mkstemp(prefix=SCRATCH_PREFIX, dir=storage.scratch_dir())
        self.path = Path(name)
        self._fd = fd
        # Each chunk is written by a helper thread while the caller hashes it, so a blob costs
        # one pass over its bytes, not two.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="blob-write")
        self._pending: Future | None = None

    def _send(self, data: bytes) -> None:
        self._wait()
        self._pending = self._writer.submit(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _commit(self) -> bool:
        self._wait()
        os.fsync(self._fd)
        self._close()
        return self.storage.put_blob(self.digest, self.path)  # consumes the file

    def _abort(self) -> None:
        try:
            self._wait()
        except OSError:
            pass  # the write that failed is what is being abandoned
        finally:
            self._close()
            self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        self._writer.shutdown()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
