"""Temporary files owned by a process, so that whatever a crash leaves can be told from what a
live process is still writing, without guessing by age.

Each process keeps its temporary files in a folder of its own, ``<parent>/<prefix><pid>-<random>``,
and holds an exclusive ``flock`` on that folder for as long as it lives. The operating system
drops the lock when the process ends in any way, ``kill -9`` included. So a folder whose lock can
be taken belongs to nobody alive and is removed whole (``remove_dead``); a live process's
folder cannot be locked by anyone else and is never touched, however old its files, whichever
process or host sharing the folder looks.

``flock`` rather than ``fcntl`` locks: an ``fcntl`` lock belongs to the process, so a second
store in the same process (tests, tools) could take it and sweep a live folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

log = logging.getLogger(__name__)


class OwnedFolder:
    """This process's temporary folder inside ``parent``: made on first use, locked while it
    lives, removed by ``close`` (or when the object is collected, or at exit)."""

    def __init__(self, parent: Path, prefix: str):
        self.parent = Path(parent)
        self.prefix = prefix
        self._path: Path | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def path(self) -> Path:
        with self._lock:
            if self._path is None or not self._path.is_dir():
                self._release()
                self._path, self._fd = _make_locked(self.parent, f"{self.prefix}{os.getpid()}-")
                self._finalizer = weakref.finalize(self, _remove, self._path, self._fd, os.getpid())
            return self._path

    def close(self) -> None:
        with self._lock:
            self._release()

    def remove_now(self) -> None:
        """``close`` for a signal handler: takes no lock (the interrupted code may hold it)."""
        finalizer = self._finalizer
        if finalizer is not None:
            finalizer()

    def _release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # removes the folder, then drops the lock
        self._path = self._fd = self._finalizer = None


def remove_dead(parent: Path, prefix: str) -> list[Path]:
    """Remove every ``prefix*`` folder in ``parent`` whose owner is gone; returns them."""
    removed: list[Path] = []
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # not a folder, or already gone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its process is alive
        try:
            # Still locked by us while it goes: its owner, if it was only now being made, waits
            # on the lock and then finds its folder gone (see _make_locked).
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
        finally:
            os.close(fd)
    if removed:
        log.info("removed the temporary files of %d ended processes", len(removed))
    return removed


def _make_locked(parent: Path, prefix: str) -> tuple[Path, int]:
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            still_ours = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            still_ours = False
        if still_ours:
            return path, fd
        os.close(fd)  # another process's start-up swept it between mkdtemp and flock: again


def _remove(path: Path, fd: int, owner: int) -> None:
    try:
        if os.getpid() == owner:  # a forked child exiting leaves its parent's folder alone
            shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
