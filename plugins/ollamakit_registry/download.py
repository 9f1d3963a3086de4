"""Downloading one blob: parallel ranged parts into a resumable partial file, the digest checked
as parts finish, and the blob committed to the store only by the pull that wanted it.

Concurrent pulls of the same digest share one ``BlobDownload`` (see ``Downloads``); across
processes, an exclusive lock on the partial file makes a second downloader wait for the first
and then reuse its finished parts.
"""

from __future__ import annotations

import fcntl
import threading
import time
import weakref

from ollamakit.blobs import BlobWriter
from ollamakit.digests import sha256_digest
from ollamakit.errors import OllamaError

from .client import ProtocolViolation, Registry, RegistryError
from .fetch import HTTPStatusError, RangeFetcher
from .hashing import CursorHash
from .parts import Part, PartialFile

SMALL = 1 << 20  # blobs up to this size come in one plain request
STREAMS = 4  # parts fetched at once
ATTEMPTS = 6  # per part, with exponential backoff
BACKOFF = 0.5
SAVE_EVERY = 1.0  # seconds between state-file updates of a running part


class DigestMismatch(OllamaError):
    def __init__(self, want: str, got: str):
        super().__init__(f"digest mismatch, file must be downloaded again: want {want}, got {got}")


class Stopped(Exception):
    """Another part failed: this one stops (not retried)."""


class BlobDownload:
    """One blob on its way in. ``completed`` and ``done`` are watched by every pull sharing it."""

    def __init__(self, store, registry: Registry, blobs_dir, digest: str, size: int):
        self.store = store
        self.registry = registry  # a clone owned by this download
        self.digest, self.size = digest, size
        self.partial = PartialFile(blobs_dir, digest, store.scratch_file)
        self.completed = 0
        self.fetched = 0  # bytes actually received, for tests and benchmarks
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.committed = False
        # For a store that streams (S3): the blob's writer, fed as the hash cursor moves, so
        # the blob is in the store but for its commit when the download ends.
        self.writer: BlobWriter | None = None
        self._lock = threading.Lock()
        self._parts_changed = threading.Condition()

    def start(self) -> BlobDownload:
        threading.Thread(target=self._run, name=f"pull {self.digest[7:19]}", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self.partial.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.partial.lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process on the same store goes first
                if self.store.has_blob(self.digest):
                    self.completed = self.size  # it finished the blob while we waited
                else:
                    self._download_and_verify()
        except BaseException as exc:
            self.error = self.error or exc
        finally:
            self.registry.close()
            self.done.set()

    def _download_and_verify(self) -> None:
        if self.size <= SMALL:
            return self._download_small()
        parts = self.partial.load(self.size)
        self.completed = sum(p.completed for p in parts)
        storage = self.store.storage
        writer = storage.blob_writer(self.digest, self.size) if storage.streams_uploads else None
        try:
            with self.partial.opened(self.size, parts) as (fd, blob):
                got = self._fetch_and_hash(parts, fd, blob, writer)
            if got != self.digest:
                self.partial.remove()
                raise DigestMismatch(self.digest, got)
        except BaseException:
            if writer is not None:
                writer.abort()  # a pull that resumes the partial file streams it again
            raise
        self.writer = writer

    def _download_small(self) -> None:
        """One request, hashed in memory, and only then written as the partial file."""
        data = self.registry.get_small_blob(self.digest, self.size)
        got = sha256_digest(data)
        if got != self.digest:
            self.partial.remove()
            raise DigestMismatch(self.digest, got)
        self.partial.write_whole(data)
        self.completed = self.fetched = self.size

    def _fetch_and_hash(
        self, parts: list[Part], fd: int, blob: memoryview, writer: BlobWriter | None
    ) -> str:
        workers = []
        try:
            pending, location = [p for p in parts if not p.done], None
            if pending:
                location = self.registry.locate_blob(self.digest, self.size)
                if not location.ranged and (len(parts) > 1 or parts[0].completed):
                    parts = pending = [
                        Part(0, 0, self.size)
                    ]  # no ranges: one stream from the start
                    self.partial.clear_state()
                    self.completed = 0
            hasher = CursorHash(blob, parts, writer)
            queue = list(pending)
            for _ in range(min(STREAMS, len(pending))):
                worker = threading.Thread(
                    target=self._worker, args=(queue, fd, location, hasher), daemon=True
                )
                worker.start()
                workers.append(worker)
            return self._hash_while_fetching(hasher, workers)
        except BaseException as exc:
            self._stop(exc)
            raise
        finally:
            for worker in workers:
                worker.join()

    def _stop(self, exc: BaseException) -> None:
        """Record the first failure and wake everyone, so all parts stop soon."""
        with self._parts_changed:
            self.error = self.error or exc
            self._parts_changed.notify_all()

    def _hash_while_fetching(self, hasher: CursorHash, workers) -> str:
        """Let the cursor catch up whenever parts land ahead of it, until all is hashed."""
        while True:
            hasher.catch_up()
            if hasher.finished:
                return "sha256:" + hasher.hexdigest()
            if self.error is not None:
                raise self.error
            if not any(worker.is_alive() for worker in workers):
                hasher.catch_up()
                if not hasher.finished:
                    raise RegistryError("download stopped before the blob was complete")
            with self._parts_changed:
                self._parts_changed.wait(0.05)

    def _worker(self, queue: list[Part], fd: int, location, hasher: CursorHash) -> None:
        fetcher = RangeFetcher()
        try:
            while self.error is None:
                with self._lock:
                    if not queue:
                        return
                    part = queue.pop(0)
                location = self._fetch_part(fetcher, part, fd, location, hasher)
                with self._parts_changed:
                    self._parts_changed.notify_all()
        except BaseException as exc:
            self._stop(exc)
        finally:
            fetcher.close()

    def _fetch_part(self, fetcher: RangeFetcher, part: Part, fd: int, location, hasher: CursorHash):
        """Fetch what is left of ``part``, retrying transient failures where it stopped."""
        last_save = time.monotonic()

        def progress(offset: int, data: memoryview) -> None:
            nonlocal last_save
            if self.error is not None:
                raise Stopped()
            n = len(data)
            part.completed += n
            with self._lock:
                self.completed += n
                self.fetched += n
            hasher.wrote(offset, data)
            if time.monotonic() - last_save > SAVE_EVERY:
                self.partial.save(part)
                last_save = time.monotonic()

        for attempt in range(ATTEMPTS):
            if self.error is not None:
                return location
            if not location.ranged and part.completed:
                with self._lock:  # without ranges a retry starts over
                    self.completed -= part.completed
                part.completed = 0
            try:
                auth = self.registry.auth.headers_for(location.url)
                start, length = part.offset + part.completed, part.size - part.completed
                fetcher.fetch(
                    location.url, auth, fd, start, length, self.size, location.ranged, progress
                )
                self.partial.save(part)
                return location
            except ProtocolViolation:
                raise
            except RegistryError as exc:
                self.partial.save(part)
                if attempt == ATTEMPTS - 1:
                    raise RegistryError(f"max retries exceeded: {exc}") from None
                if isinstance(exc, HTTPStatusError):
                    if exc.code == 401 and self.registry.is_registry_url(location.url):
                        self.registry.renew_auth(None, auth.get("Authorization"))
                    elif 400 <= exc.code < 500 and exc.code not in (403, 408, 429):
                        raise
                    location = self.registry.locate_blob(
                        self.digest, self.size
                    )  # a signed URL may expire
                time.sleep(BACKOFF * 2**attempt)
        return location

    # -- for the pull: wait, then commit -----------------------------------------------------

    def commit(self, store) -> None:
        """Move the verified blob into the store (once, whichever sharing pull asks first)."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        with self._lock:
            if self.committed:
                return
            if self.writer is not None:
                writer, self.writer = self.writer, None  # should it fail: put_blob next time
                writer.commit()
            elif not store.has_blob(self.digest):
                store.storage.put_blob(self.digest, self.partial.path)
            self.partial.remove()
            self.committed = True


class Downloads:
    """The downloads in flight for one kernel, so concurrent pulls of a digest share one."""

    _by_kernel: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _guard = threading.Lock()

    def __init__(self):
        self._active: dict[str, BlobDownload] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, kernel) -> Downloads:
        with cls._guard:
            downloads = cls._by_kernel.get(kernel)
            if downloads is None:
                downloads = cls._by_kernel[kernel] = cls()
            return downloads

    def get(self, store, registry: Registry, blobs_dir, digest: str, size: int) -> BlobDownload:
        """The running or finished-but-uncommitted download of ``digest``, or a new one."""
        with self._lock:
            current = self._active.get(digest)
            usable = current is not None and current.size == size and not current.committed
            if usable and not (current.done.is_set() and current.error is not None):
                return current
            download = BlobDownload(store, registry.clone(), blobs_dir, digest, size)
            self._active[digest] = download
        return download.start()

    def forget(self, download: BlobDownload) -> None:
        with self._lock:
            if self._active.get(download.digest) is download:
                del self._active[download.digest]
