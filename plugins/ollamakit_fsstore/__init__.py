"""Storage driver ``fs``: Ollama's own on-disk layout, so ``OLLAMA_MODELS`` can point at an
existing Ollama model directory.

    <models>/blobs/sha256-<hex>
    <models>/manifests/<host>/<namespace>/<model>/<tag>

Every write goes to a temporary file and is then renamed or linked into place, so a crash
leaves either the old file or the new one. A process keeps its temporary files (uploads,
quantize and conversion outputs, manifests being written) in a folder of its own inside
``blobs/``, ``sha256-tmp-<pid>-<random>/``, locked for as long as the process lives
(``ollamakit.scratch``): start-up removes the folders of processes that died, and never one
that is still in use. Ollama skips folders in ``blobs/`` when it prunes, lists nothing but
digests there, and names its own temporary files ``sha256-<random>`` and a pull's
``sha256-<hex>-partial``; the model store's pruning removes stale ones of the former as Ollama's
does.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ollamakit.digests import blob_filename, is_digest
from ollamakit.interfaces import LocalStorage
from ollamakit.names import ModelName
from ollamakit.scratch import OwnedFolder, remove_dead


SCRATCH_PREFIX = "sha256-tmp-"  # this process's temporary folder in blobs/
_MANIFEST_TEMP = ".tmp-"  # manifests written by earlier versions beside their final name
_BLOB_OR_PARTIAL = re.compile(
    r"^sha256-[0-9a-fA-F]{64}"
)  # a blob, or a pull's -partial files of one
UNOWNED_GRACE = 3600.0  # Ollama's layerPruneGracePeriod
_OLD_SCRATCH = ("*.upload", "*.gguf", "sha256-*")  # what earlier versions left in <models>/tmp


def atomic_write(path: Path, data: bytes, scratch: Path | None = None) -> None:
    """Write ``data`` to a temporary file in ``scratch`` (or beside ``path``) and rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=_MANIFEST_TEMP, dir=scratch or path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(temp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV or scratch is None:
                raise
            Path(temp).unlink(missing_ok=True)  # blobs/ is on another disk: write beside it
            atomic_write(path, data)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class FileSystemStorage(LocalStorage):
    def __init__(self, kernel, root: Path | None = None):
        super().__init__(kernel)
        self.root = Path(root or kernel.settings.models_dir)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._scratch = OwnedFolder(self.blobs, SCRATCH_PREFIX)
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

    def list_blobs(self) -> Iterator[str]:
        for path in self.blobs.iterdir():
            if path.is_file() and is_digest(path.name):
                yield "sha256:" + path.name[7:]

    def scratch_dir(self) -> Path:
        # Inside blobs/: committing a blob is a link within one filesystem, and the models
        # folder keeps Ollama's layout, with no tmp/ of its own.
        return self._scratch.path

    def remove_leftovers(self) -> None:
        remove_dead(self.blobs, SCRATCH_PREFIX)
        # Files nobody owns: Ollama's temporary blobs (``sha256-<random>``, not a digest), and
        # the manifest temporaries and ``tmp/`` files of earlier versions. As Ollama's pruning
        # does, one an hour old is a leftover; a pull's ``-partial`` files stay for it to resume.
        deadline = time.time() - UNOWNED_GRACE
        loose = [p for p in self.blobs.glob("sha256-*") if not _BLOB_OR_PARTIAL.match(p.name)]
        loose += self.manifests.glob(f"*/*/*/{_MANIFEST_TEMP}*")
        loose += [p for pattern in _OLD_SCRATCH for p in (self.root / "tmp").glob(pattern)]
        for path in loose:
            try:
                if path.is_file() and path.stat().st_mtime < deadline:
                    path.unlink()
            except OSError:
                pass
        self._drop_old_scratch_folder()

    def close(self) -> None:
        self._scratch.close()

    def close_at_signal(self) -> None:
        self._scratch.remove_now()

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
        atomic_write(self._manifest_path(parts), data, self.scratch_dir())

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
            if path.is_file() and not path.name.startswith(_MANIFEST_TEMP):
                parts = tuple(path.relative_to(self.manifests).parts)
                if ModelName(*parts).is_valid():
                    yield parts, path.stat().st_mtime
