"""The local read-through cache of blobs: the engine memory-maps weights, so a model runs from a
local file even when its store is a bucket.

It lives in Ollama's own layout, ``<models>/blobs/sha256-<hex>``, and is addressed by digest,
so an entry is never stale. A file gets its name only once its bytes hashed to that name (it is
written in this process's scratch folder, then renamed), so whatever is there is whole and
right. The total size is bounded; the least recently used blobs go first, except those in use:
a blob this process has open or mapped (``/proc/self/fd`` and ``/proc/self/maps``, so a model
being loaded or running keeps its weights), or one handed out in the last ``PIN_SECONDS``
(between ``blob_path`` and the open that follows). In-use blobs may take the cache over its
bound for as long as they are used. A cached file's modification time is its object's
LastModified, so its age is the object's age.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from ollamakit.digests import blob_filename, is_digest

log = logging.getLogger(__name__)

PIN_SECONDS = 600.0


class BlobCache:
    def __init__(self, folder: Path, limit: int):
        self.folder = Path(folder)
        self.limit = limit
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # digest -> size, least recent first
        self._pinned: dict[str, float] = {}  # digest -> when it was last handed out
        self._filling: dict[str, threading.Lock] = {}
        found = []
        for path in self.folder.iterdir():
            if is_digest(path.name) and path.is_file():
                stat = path.stat()
                found.append((stat.st_atime, "sha256:" + path.name[7:], stat.st_size))
        for _, digest, size in sorted(found):
            self._entries[digest] = size

    @property
    def size(self) -> int:
        with self._lock:
            return sum(self._entries.values())

    def path(self, digest: str) -> Path:
        return self.folder / blob_filename(digest)

    def get(self, digest: str) -> Path | None:
        """The cached file, marked as just used, or None."""
        path = self.path(digest)
        with self._lock:
            if digest not in self._entries:
                return None
            self._entries.move_to_end(digest)
            self._pinned[digest] = time.monotonic()
        try:
            stat = path.stat()
            os.utime(path, (time.time(), stat.st_mtime))  # atime orders the cache after a restart
        except FileNotFoundError:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return path

    def fill(self, digest: str, scratch: Path, write: Callable[[int], float]) -> Path:
        """The cached file for ``digest``, made by ``write(fd)`` (which must check the hash and
        return the object's time) when absent. Concurrent fills of one digest download once."""
        with self._lock:
            gate = self._filling.setdefault(digest, threading.Lock())
        with gate:
            try:
                cached = self.get(digest)
                if cached is not None:
                    return cached
                temp = scratch / f"fill-{blob_filename(digest)[7:19]}-{threading.get_ident()}"
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    try:
                        mtime = write(fd)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    return self.adopt(digest, temp, mtime)
                finally:
                    temp.unlink(missing_ok=True)
            finally:
                with self._lock:
                    self._filling.pop(digest, None)

    def adopt(self, digest: str, source: Path, mtime: float | None) -> Path:
        """Move the verified local file ``source`` in as ``digest`` (same filesystem)."""
        path = self.path(digest)
        if mtime is not None:
            os.utime(source, (time.time(), mtime))
        os.replace(source, path)
        with self._lock:
            self._entries[digest] = path.stat().st_size
            self._entries.move_to_end(digest)
            self._pinned[digest] = time.monotonic()
        self.evict()
        return path

    def discard(self, digest: str) -> None:
        """Drop a blob's copy (its object was deleted), unless it is in use."""
        with self._lock:
            if digest not in self._entries or digest in self._in_use():
                return
            self._entries.pop(digest)
            self._pinned.pop(digest, None)
        self.path(digest).unlink(missing_ok=True)

    def evict(self) -> list[str]:
        """Remove least recently used blobs until the cache is within its bound."""
        removed = []
        with self._lock:
            excess = sum(self._entries.values()) - self.limit
            if excess <= 0:
                return removed
            in_use = self._in_use()
            for digest, size in list(self._entries.items()):
                if excess <= 0:
                    break
                if digest in in_use:
                    continue
                self.path(digest).unlink(missing_ok=True)
                del self._entries[digest]
                self._pinned.pop(digest, None)
                removed.append(digest)
                excess -= size
        if excess > 0:
            log.info("blob cache over its bound by %d bytes: the rest is in use", excess)
        return removed

    def _in_use(self) -> set[str]:
        now = time.monotonic()
        for digest, since in list(self._pinned.items()):
            if now - since > PIN_SECONDS:
                del self._pinned[digest]
        used = set(self._pinned)
        folder = str(self.folder) + "/"
        for path in _open_and_mapped_files():
            if path.startswith(folder) and is_digest(path[len(folder) :]):
                used.add("sha256:" + path[len(folder) + 7 :])
        return used


def _open_and_mapped_files() -> set[str]:
    """The paths this process has open or memory-mapped (Linux's /proc; empty elsewhere, where
    only the pins protect blobs in use)."""
    paths = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                paths.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if len(fields) == 6:
                    paths.add(fields[5].rstrip("\n"))
    except OSError:
        pass
    return paths
