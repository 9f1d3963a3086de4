"""SHA-256 of a blob that arrives out of order, computed while it arrives.

sha256 only runs front to back, so a cursor marks how far the digest has got. A part worker
whose bytes land exactly at the cursor hashes them on the spot, while they are still in the
CPU cache; bytes that landed ahead of the cursor (other parts, or a resumed download's earlier
progress) are hashed straight from the partial file's memory map when the cursor reaches
them. Every decision is made under one lock against the cursor, so each byte is hashed once.

With a ``BlobWriter`` (a store that streams, such as S3), the bytes the cursor passes go to the
writer, which hashes them and sends them on: the blob reaches the store while it downloads.
"""

from __future__ import annotations

import hashlib
import threading

from ollamakit.blobs import BlobWriter

BLOCK = 8 << 20


class CursorHash:
    def __init__(self, blob: memoryview, parts, writer: BlobWriter | None = None):
        self.blob = blob  # the whole partial file, mapped
        self.parts = parts  # ordered, contiguous; ``completed`` counts bytes already written
        self.position = 0
        self.total = sum(p.size for p in parts)
        self.writer = writer
        self._sha = hashlib.sha256()
        self._update = writer.write if writer is not None else self._sha.update
        self._lock = threading.Lock()

    def wrote(self, offset: int, data: memoryview) -> None:
        """Called by a worker after ``data`` was written at ``offset`` and counted."""
        if offset != self.position:  # unlocked fast path: the cursor only moves forward
            return
        with self._lock:
            if offset == self.position:
                self._update(data)
                self.position += len(data)

    def catch_up(self) -> None:
        """Hash, from the file, whatever is written contiguously after the cursor."""
        while True:
            with self._lock:
                available = self._written_end()
                if available <= self.position:
                    return
                end = min(self.position + BLOCK, available)
                self._update(self.blob[self.position : end])
                self.position = end

    def _written_end(self) -> int:
        """Where the contiguous written bytes from the cursor's part end."""
        end = self.position
        for part in self.parts:
            if part.offset + part.size <= end:
                continue
            written = part.offset + part.completed
            if part.offset > end or written <= end:
                break
            end = written
            if not part.done:
                break
        return end

    @property
    def finished(self) -> bool:
        return self.position >= self.total

    def hexdigest(self) -> str:
        return self.writer.sha256 if self.writer is not None else self._sha.hexdigest()
