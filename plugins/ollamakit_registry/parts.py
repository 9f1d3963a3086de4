"""The on-disk shape of a download in progress, as Ollama lays it out, so a pull resumes after
an interruption or a restart:

    blobs/sha256-<hex>-partial      the blob's bytes, written in place (sparse until done)
    blobs/sha256-<hex>-partial-<N>  {"N", "Offset", "Size", "Completed"} for part N

The state files are only trusted when they describe exactly the part plan we would make for
this size; anything else (another version's plan, a corrupt or hostile file) starts afresh.
"""

from __future__ import annotations

import json
import mmap
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ollamakit.digests import blob_filename

MB = 1000 * 1000
PARTS = 16
# Ollama clamps parts to [100 MB, 1000 MB] for CDNs far away. Smaller parts here let the
# digest check run over finished parts while later ones still download (see download.py).
MIN_PART = 16 * MB
MAX_PART = 1000 * MB
MAX_STATE_BYTES = 4096


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    @property
    def done(self) -> bool:
        return self.completed >= self.size

    def state(self) -> bytes:
        return json.dumps(
            {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}
        ).encode()


def plan(total: int) -> list[Part]:
    """Parts of ``total/16`` bytes clamped to [MIN_PART, MAX_PART]."""
    size = min(max(total // PARTS, MIN_PART), MAX_PART)
    return [
        Part(n, offset, min(size, total - offset)) for n, offset in enumerate(range(0, total, size))
    ]


class PartialFile:
    """The ``-partial`` file of one digest and its per-part state files."""

    def __init__(self, blobs_dir: Path, digest: str, scratch_file=None):
        self.path = Path(blobs_dir) / (blob_filename(digest) + "-partial")
        # New temporary files in this process's own scratch folder (``ModelStore.scratch_file``),
        # which start-up removes if the process dies; without it, temporaries go beside.
        self._scratch_file = scratch_file

    def _temp_for(self, target: Path) -> Path:
        if self._scratch_file is not None:
            return self._scratch_file()
        return target.with_name(target.name + ".tmp")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def state_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}-{n}")

    def state_files(self) -> list[Path]:
        prefix = self.path.name + "-"
        return [p for p in self.path.parent.glob(prefix + "*") if p.name[len(prefix) :].isdigit()]

    def load(self, total: int) -> list[Part]:
        """The plan for ``total``, with progress restored from state files that match it."""
        parts = plan(total)
        try:
            actual = self.path.stat().st_size
        except FileNotFoundError:
            actual = -1
        if actual != total:
            return parts
        for part in parts:
            try:
                with open(self.state_path(part.n), "rb") as fh:
                    state = json.loads(fh.read(MAX_STATE_BYTES + 1)[:MAX_STATE_BYTES])
            except (OSError, ValueError):
                continue
            if not isinstance(state, dict):
                continue
            completed = state.get("Completed")
            same_part = (state.get("N"), state.get("Offset"), state.get("Size")) == (
                part.n,
                part.offset,
                part.size,
            )
            if (
                same_part
                and isinstance(completed, int)
                and not isinstance(completed, bool)
                and 0 <= completed <= part.size
            ):
                part.completed = completed
        return parts

    @contextmanager
    def opened(self, total: int, parts: list[Part]):
        """The partial file, created or resized to ``total``: yields its descriptor for writing
        and a read-only memory map of it (hashing reads the page cache through it, no copy).

        When no part has progress the old state is cleared, so stale files never mix in.
        """
        if not any(p.completed for p in parts):
            self.clear_state()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != total:
                os.ftruncate(fd, total)
            if total == 0:
                yield fd, memoryview(b"")
                return
            region = mmap.mmap(fd, total, prot=mmap.PROT_READ)
            view = memoryview(region)
            try:
                yield fd, view
            finally:
                view.release()
                try:
                    region.close()
                except BufferError:
                    pass  # a slice is still referenced (an error's traceback): closed when freed
        finally:
            os.close(fd)

    def write_whole(self, data: bytes) -> None:
        """A small blob's verified bytes as the partial file, written atomically."""
        self.clear_state()
        temp = self._temp_for(self.path)
        temp.write_bytes(data)
        os.replace(temp, self.path)

    def save(self, part: Part) -> None:
        """Atomically record a part's progress (its bytes are already written)."""
        target = self.state_path(part.n)
        temp = self._temp_for(target)
        with open(temp, "wb") as fh:
            fh.write(part.state())
        os.replace(temp, target)

    def clear_state(self) -> None:
        for path in self.state_files():
            path.unlink(missing_ok=True)
        for path in self.path.parent.glob(self.path.name + "-*.tmp"):
            path.unlink(missing_ok=True)

    def remove(self) -> None:
        self.clear_state()
        self.path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)
