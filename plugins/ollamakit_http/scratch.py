"""Request bodies written to a scratch file of the store and hashed while they arrive.

``HashingScratchFile`` has the interface waitress expects of a body buffer (``append``,
``__len__``, ``getfile``, ``close``), so its receivers fill it as they would their own spool.
The server's loop thread writes each piece to the file; a helper thread hashes it meanwhile
(hashlib releases the GIL on large buffers) and another asks the kernel to write the file back
to disk every few megabytes, so that the fsync the store does before naming the blob finds
little left to do.

Measured and not taken: writing with ``O_DIRECT`` from aligned blocks (no copy into the page
cache, no write-back left for the fsync). Alone it cost less CPU, but inside the server it was
slower here (295 against 350 MB/s in the same run, load 3.5), and it needs alignment, padding
and a fallback for filesystems that refuse it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from pathlib import Path

from ollamakit.blobs import BlobWriter
from ollamakit.web.received import ReceivedBody

log = logging.getLogger(__name__)

SUFFIX = ".upload"
QUEUED_PIECES = 64  # pieces written but not yet hashed; a piece is one socket read (<= 256 KiB)
WRITE_BACK_EVERY = 8 << 20  # 8 to 32 MiB measured alike; the fsync tail stays short
FORWARD_READ = 4 << 20  # what the forwarding helper reads from the file at once, at most


class HashingScratchFile:
    """One request body on its way to a scratch file; owned by the waitress request."""

    def __init__(self, path: Path, on_close):
        self.path = path
        self.blob: BlobWriter | None = None
        self._on_close = on_close
        self._fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        self._file_identity = _identity(os.fstat(self._fd))
        self._size = 0
        self._written_back = 0
        self._error: OSError | None = None
        self._received: ReceivedBody | None = None
        self._reader = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._helpers_lock = threading.Lock()
        self._sha = hashlib.sha256()
        self._pieces: queue.Queue = queue.Queue(QUEUED_PIECES)
        self._abandoned = False
        self._hasher = self._start_hashing()
        self._write_back = threading.Event()
        self._writer_done = False
        self._flusher = threading.Thread(target=self._flush, name="upload-write-back", daemon=True)
        self._hasher.start()
        self._flusher.start()

    def _start_hashing(self) -> threading.Thread:
        return threading.Thread(target=self._hash, name="upload-hash", daemon=True)

    def _hex(self) -> str:
        return self._sha.hexdigest()

    def _took(self, data: bytes) -> None:
        """One piece is in the file (or failed to get there: ``_error``)."""
        self._pieces.put(data)

    # -- waitress's buffer interface (loop thread, then the task thread) --------------------------

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if self._closed:  # the connection closed while waitress was still handing over data
            return
        self._size += len(data)
        if self._error is None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:  # a full disk: the app is told when it reads the body
                self._error = exc.with_traceback(None)
        self._took(data)
        if self._size - self._written_back >= WRITE_BACK_EVERY:
            self._written_back = self._size
            self._write_back.set()

    def getfile(self):
        """``wsgi.input``: the whole body, read back from the scratch file."""
        try:
            received = self.finish()
        except OSError as exc:
            return _Unreadable(exc)
        if self._reader is None:
            self._reader = open(received.path, "rb")
        return self._reader

    def getbuf(self):
        return self

    def close(self) -> None:
        """Stop the helpers and remove the file, unless the app has moved it in as a blob."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop_helpers(abandon=self._received is None)
        if self._reader is not None:
            self._reader.close()
        try:
            if _identity(os.stat(self.path)) == self._file_identity:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._on_close(self)

    # -- the body, complete ---------------------------------------------------------------------

    def finish(self) -> ReceivedBody:
        """Wait for the hash of everything appended; raises the OSError that writing met."""
        if self._received is None and self._error is None:
            self._stop_helpers(abandon=False)
            if self._error is None:
                self._received = ReceivedBody(self.path, self._size, self._hex(), self.blob)
        if self._error is not None:
            raise self._error
        return self._received

    def _stop_helpers(self, abandon: bool) -> None:
        with self._helpers_lock:
            self._stop_hashing(abandon)
            if self._flusher.is_alive():
                self._writer_done = True
                self._write_back.set()
                self._flusher.join()

    def _stop_hashing(self, abandon: bool) -> None:
        if self._hasher.is_alive():
            self._abandoned = abandon
            self._pieces.put(None)
            self._hasher.join()

    def _hash(self) -> None:
        while (piece := self._pieces.get()) is not None:
            if not self._abandoned:  # still drain, so that the loop thread never blocks on put
                self._sha.update(piece)

    def _flush(self) -> None:
        while True:
            self._write_back.wait()
            self._write_back.clear()
            if self._writer_done:
                return
            try:
                _fdatasync(self._fd)
            except OSError as exc:
                self._error = self._error or exc.with_traceback(None)
                return


class ForwardingScratchFile(HashingScratchFile):
    """A blob upload for a store that streams (``Storage.streams_uploads``): the file still
    takes each piece at once (so the server's loop never waits for the network), and a helper
    reads it behind the writes into the blob's ``BlobWriter``, which hashes and sends on. By
    the end of the body the blob is in the store but for its commit, which the app makes
    (``ReceivedBody.blob``); one it does not make is aborted when the request closes. If the
    writer fails, the upload goes on as a plain scratch file (hashed from the start) and the
    app stores the file."""

    def __init__(self, path: Path, on_close, open_writer):
        self._open_writer = open_writer
        self._progress = threading.Condition()
        self._available = 0  # bytes in the file for the helper to read
        self._finished = False
        super().__init__(path, on_close)

    def _start_hashing(self) -> threading.Thread:
        return threading.Thread(target=self._forward, name="upload-forward", daemon=True)

    def _took(self, data: bytes) -> None:
        with self._progress:
            if self._error is None:
                self._available = self._size
            self._progress.notify()

    def _stop_hashing(self, abandon: bool) -> None:
        with self._progress:
            self._finished = True
            self._abandoned = self._abandoned or abandon
            self._progress.notify()
        if not abandon:
            self._hasher.join()
        # Abandoned: the helper aborts the upload on its own thread (this may be the server's
        # loop, which must not wait for the network); a finished body's writer is the app's.
        elif not self._hasher.is_alive() and self.blob is not None:
            self.blob.abort()

    def close(self) -> None:
        super().close()
        if self.blob is not None and not self._hasher.is_alive():
            self.blob.abort()  # the app did not commit it (a no-op after a commit)

    def _forward(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            try:
                self.blob = self._open_writer()
            except Exception:
                log.warning(
                    "upload not streamed to the store; it is stored when complete", exc_info=True
                )
            offset = 0
            while True:
                with self._progress:
                    while offset == self._available and not (self._finished or self._abandoned):
                        self._progress.wait()
                    if self._abandoned:
                        return
                    end, finished = self._available, self._finished
                while offset < end and not self._abandoned:
                    data = os.pread(fd, min(end - offset, FORWARD_READ), offset)
                    if not data:
                        raise OSError(f"{self.path} is shorter than what was written to it")
                    self._send(data, fd, offset)
                    offset += len(data)
                if finished and offset == end:
                    return
        except OSError as exc:
            self._error = self._error or exc.with_traceback(None)
        finally:
            os.close(fd)
            if self._abandoned and self.blob is not None:
                self.blob.abort()

    def _send(self, data: bytes, fd: int, offset: int) -> None:
        if self.blob is not None:
            try:
                self.blob.write(data)
                return
            except Exception:
                log.warning(
                    "streaming an upload to the store failed; it is stored when complete",
                    exc_info=True,
                )
                self.blob.abort()
                self.blob = None
                for start in range(0, offset, FORWARD_READ):  # what went to the writer, again
                    self._sha.update(os.pread(fd, min(FORWARD_READ, offset - start), start))
        self._sha.update(data)

    def _hex(self) -> str:
        return self.blob.sha256 if self.blob is not None else self._sha.hexdigest()


class ScratchFiles:
    """Creates the scratch files of blob uploads and removes whatever is left at shutdown."""

    def __init__(self, store):
        self.store = store
        self._open: set[HashingScratchFile] = set()
        self._lock = threading.Lock()
        self._creating = False
        self._on_created = None

    def create(self, blob: str | None = None, size: int | None = None) -> HashingScratchFile | None:
        """A new scratch file, or None when the store cannot give one (the body then takes
        waitress's usual way and the app hashes it). ``blob``: the digest the upload names,
        streamed on to the store as it arrives when the store's driver streams (``size``: its
        length when known)."""
        self._creating = True
        try:
            return self._create(blob, size)
        finally:
            self._creating = False
            deferred, self._on_created = self._on_created, None
            if deferred is not None:
                deferred()

    def _create(self, blob: str | None, size: int | None) -> HashingScratchFile | None:
        path = None
        try:
            path = self.store.scratch_file(suffix=SUFFIX)
            if blob is not None and self.store.storage.streams_uploads:
                storage = self.store.storage
                body: HashingScratchFile = ForwardingScratchFile(
                    path, self._forget, lambda: storage.blob_writer(blob, size)
                )
            else:
                body = HashingScratchFile(path, self._forget)
        except Exception:  # a driver without local files, a full disk, no threads left
            log.warning("no scratch file for an upload; waitress receives it", exc_info=True)
            if path is not None:
                path.unlink(missing_ok=True)
            return None
        with self._lock:
            self._open.add(body)
        return body

    def _forget(self, body: HashingScratchFile) -> None:
        with self._lock:
            self._open.discard(body)

    def close_all(self) -> None:
        with self._lock:
            bodies = list(self._open)
        for body in bodies:
            body.close()

    def unlink_all_then(self, action) -> None:
        """Remove the files of every upload in progress, then call ``action`` (which ends the
        process). This runs in a signal handler, so on the loop thread and between any two of
        its steps, and takes no lock. If it interrupted ``create``, both wait until the new
        file is registered, so that it goes too."""
        if self._creating:
            self._on_created = lambda: self.unlink_all_then(action)
            return
        for body in list(self._open):
            body.path.unlink(missing_ok=True)
        action()


_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class _Unreadable:
    """``wsgi.input`` of a body that could not be stored: reading it reports why."""

    def __init__(self, error: OSError):
        self.error = error

    def read(self, *args):
        raise self.error

    readline = read

    def close(self) -> None:
        pass
