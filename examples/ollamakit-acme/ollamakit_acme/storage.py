"""Storage driver ``acme``: manifests in a SQLite index, blobs in fanned-out folders.

    <models>/acme/index.sqlite3          one row per model tag (exact-case name parts, bytes, mtime)
    <models>/acme/objects/ab/cd/<hex>    blob sha256:abcd...; two levels keep folders small
    <models>/acme/tmp/                   scratch files, on the same filesystem as objects/

Why a company might want this: one indexed query lists every model (no directory walk over a
network filesystem), manifest writes are transactions, and no folder ever holds more than a few
hundred blobs. Digests are checked and garbage is collected by the kernel, not here.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from ollamakit.digests import parse_digest
from ollamakit.interfaces import LocalStorage
from ollamakit.names import ModelName

SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    host TEXT NOT NULL, namespace TEXT NOT NULL, model TEXT NOT NULL, tag TEXT NOT NULL,
    data BLOB NOT NULL, modified REAL NOT NULL,
    PRIMARY KEY (host, namespace, model, tag)
)
"""
_HEX = frozenset("0123456789abcdefABCDEF")


class AcmeStorage(LocalStorage):
    def __init__(self, kernel, root: Path | None = None):
        super().__init__(kernel)
        self.root = Path(root or Path(kernel.settings.models_dir) / "acme")
        self.objects = self.root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.index = self.root / "index.sqlite3"
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: the server is multi-threaded and connections are cheap.
        return sqlite3.connect(self.index, timeout=30)

    # -- blobs

    def blob_path(self, digest: str) -> Path:
        hex_ = parse_digest(digest)[7:]
        return self.objects / hex_[:2] / hex_[2:4] / hex_

    def put_blob(self, digest: str, source: Path) -> bool:
        target = self.blob_path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # A hard link never replaces an existing file, so of two racing uploads of the same
            # blob exactly one reports it as new; the original is never touched.
            os.link(source, target)
            return True
        except FileExistsError:
            return False
        except OSError:
            # Filesystems without hard links: fall back to a rename (last writer wins, but
            # every writer holds the same verified bytes).
            if target.exists():
                return False
            os.replace(source, target)
            return True
        finally:
            Path(source).unlink(missing_ok=True)

    def delete_blob(self, digest: str) -> None:
        path = self.blob_path(digest)
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):  # drop fan-out folders left empty
            try:
                folder.rmdir()
            except OSError:
                break

    def list_blobs(self) -> Iterator[str]:
        for path in self.objects.glob("??/??/*"):
            name = path.name
            if (
                len(name) == 64
                and set(name) <= _HEX
                and path.parent.parent.name + path.parent.name == name[:4]
            ):
                yield "sha256:" + name

    def scratch_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- manifests

    @staticmethod
    def _checked(parts) -> tuple[str, str, str, str]:
        parts = tuple(parts)
        if len(parts) != 4 or not ModelName(*parts).is_valid():
            raise ValueError(f"invalid model name parts {parts!r}")
        return parts

    def read_manifest(self, parts) -> bytes | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT data FROM manifests WHERE host=? AND namespace=? AND model=? AND tag=?",
                self._checked(parts),
            ).fetchone()
        return bytes(row[0]) if row else None

    def write_manifest(self, parts, data: bytes) -> None:
        with closing(self._connect()) as db, db:  # one transaction: the old row or the new one
            db.execute(
                "INSERT OR REPLACE INTO manifests (host, namespace, model, tag, data, modified) VALUES (?, ?, ?, ?, ?, ?)",
                (*self._checked(parts), sqlite3.Binary(bytes(data)), time.time()),
            )

    def delete_manifest(self, parts) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "DELETE FROM manifests WHERE host=? AND namespace=? AND model=? AND tag=?",
                self._checked(parts),
            )

    def list_manifests(self):
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT host, namespace, model, tag, modified FROM manifests"
            ).fetchall()
        for host, namespace, model, tag, modified in rows:
            yield (host, namespace, model, tag), float(modified)
