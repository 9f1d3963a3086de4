"""Storage driver ``fs``: Ollama's own on-disk layout, so ``OLLAMA_MODELS`` can point at an
existing Ollama model directory.

    <models>/blobs/sha256-<hex>
    <models>/manifests/<host>/<namespace>/<model>/<tag>

Every write goes to a temporary file in the same directory and is then renamed into place, so a
crash leaves either the old file or the new one. As in Ollama, the temporary files of blobs live
in ``blobs/`` itself (Ollama names them ``sha256-<random>``, and a pull's ``sha256-<hex>-partial``)
and nothing else is added to the folder: no name there that is not a digest is ever listed as a
blob, and Ollama's start-up pruning removes such leftovers as ollamakit's does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ollamakit.digests import blob_filename, is_digest
from ollamakit.interfaces import Storage
from ollamakit.names import ModelName


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class FileSystemStorage(Storage):
    def __init__(self, kernel, root: Path | None = None):
        super().__init__(kernel)
        self.root = Path(root or kernel.settings.models_dir)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._fix_blob_names()
        self._drop_old_scratch_folder()

    def _drop_old_scratch_folder(self) -> None:
        """Earlier versions kept their temporary files in ``<models>/tmp``; an empty one goes,
        so that the folder has Ollama's layout. One with files in it is left alone."""
        try:
            (self.root / "tmp").rmdir()
        except OSError:
            pass

    def _fix_blob_names(self) -> None:
        """Older stores (and other tools) wrote ``sha256:<hex>``; the layout uses ``sha256-``."""
        for path in self.blobs.glob("sha256:*"):
            if is_digest(path.name):
                os.replace(path, self.blobs / blob_filename(path.name))

    # -- blobs

    def blob_path(self, digest: str) -> Path:
        return self.blobs / blob_filename(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open_blob(self, digest: str):
        return open(self.blob_path(digest), "rb")

    def put_blob(self, digest: str, source: Path) -> bool:
        # A hard link creates the name only if it is absent, so of two uploads of the same
        # digest racing here exactly one reports the blob as new; rename would let both.
        try:
            os.link(source, self.blob_path(digest))
            return True
        except FileExistsError:
            return False
        finally:
            Path(source).unlink(missing_ok=True)

    def delete_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[str]:
        for path in self.blobs.iterdir():
            if path.is_file() and is_digest(path.name):
                yield "sha256:" + path.name[7:]

    def scratch_dir(self) -> Path:
        # blobs/ itself, as Ollama does: committing a blob is a link in the same folder, and the
        # models folder keeps Ollama's layout, with no tmp/ of its own.
        self.blobs.mkdir(parents=True, exist_ok=True)
        return self.blobs

    # -- manifests

    def _manifest_path(self, parts: tuple[str, str, str, str]) -> Path:
        if not ModelName(*parts).is_valid():
            raise ValueError(f"invalid model name parts {parts!r}")
        return self.manifests.joinpath(*parts)

    def read_manifest(self, parts) -> bytes | None:
        try:
            return self._manifest_path(parts).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_manifest(self, parts, data: bytes) -> None:
        atomic_write(self._manifest_path(parts), data)

    def delete_manifest(self, parts) -> None:
        path = self._manifest_path(parts)
        path.unlink(missing_ok=True)
        # Prune the directories left empty, up to (not including) manifests/.
        for parent in list(path.parents)[:3]:
            try:
                parent.rmdir()
            except OSError:
                break

    def list_manifests(self):
        # Only files exactly four levels deep are models.
        for path in self.manifests.glob("*/*/*/*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                parts = tuple(path.relative_to(self.manifests).parts)
                if ModelName(*parts).is_valid():
                    yield parts, path.stat().st_mtime
