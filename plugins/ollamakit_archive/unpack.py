"""Reading an archive into the store, trusting nothing in it.

The tar is read as a stream, entry by entry, and never extracted to a path: each entry's name is
checked against the three the layout has (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``),
so ``..``, absolute paths and anything else are refused by name; links, devices and sparse files
are refused by type; each entry's size is bounded before a byte of it is read.

A blob's bytes must hash to its name. Small entries (manifests, configs, templates) are held in
memory until the end; large ones (weights) are streamed into the store through
``ModelStore.write_blob``, which commits a blob only when it hashes right. Models are recorded
(their manifests written) only once the whole archive has been read and every manifest's blobs
are present with the sizes it says. If anything fails, the blobs this import added are removed
again: the store is as it was.

An archive of one model can be recorded under another name than the one it carries (the
manifest and blobs are the same, so the model's digest is too).
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import PurePosixPath

from ollamakit import manifest as mf
from ollamakit.digests import sha256_digest
from ollamakit.errors import BadRequest, DigestMismatch
from ollamakit.names import ModelName

from .layout import BLOBS, INDEX_FILE, LAYOUT, LAYOUT_FILE, MANIFEST_MEDIA_TYPES, REF_NAME

MAX_ENTRIES = 4096  # a model is a dozen blobs at most
MAX_MODELS = 256
MAX_LAYOUT_FILE = 4096
MAX_INDEX = 1 << 20
SMALL_ENTRY = 1 << 20  # held in memory; larger blobs go to the store as they are read
MAX_SMALL_TOTAL = 64 << 20
CHUNK = 1 << 20
_BLOB_NAME = re.compile(BLOBS + r"([0-9a-f]{64})")
_FOLDERS = {".", "blobs", "blobs/sha256"}
MAX_EXTENDED_HEADER = 64 * 1024  # pax headers and GNU long names: a path and a few times
_EXTENSION_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class BadArchive(BadRequest):
    def __init__(self, message: str):
        super().__init__(f"invalid archive: {message}")


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a pax extended header or a GNU long name whole into memory, whatever size
    the archive gives it: bound them first (``_proc_member`` is where tarfile dispatches on the
    entry's type, unchanged since Python 2)."""

    def _proc_member(self, tarfile_):
        if self.type in _EXTENSION_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise BadArchive(
                f"an extended header of {self.size} bytes, more than the {MAX_EXTENDED_HEADER} allowed"
            )
        return super()._proc_member(tarfile_)


def entry_name(info: tarfile.TarInfo) -> str:
    """The entry's name with a leading ``./`` removed; refused when absolute or climbing."""
    raw = info.name
    if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw) or "\\" in raw:
        raise BadArchive(f"entry {raw[:200]!r} has an absolute or non-portable path")
    path = PurePosixPath(raw)
    if ".." in path.parts:
        raise BadArchive(f"entry {raw[:200]!r} leaves the archive's folder")
    return str(path)


def read_entry(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Iterator[bytes]:
    source = tar.extractfile(info)
    left = info.size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            raise BadArchive("the archive ends in the middle of an entry")
        left -= len(chunk)
        yield chunk


class Unpacker:
    def __init__(self, store, rename: ModelName | None = None):
        self.store = store
        self.rename = rename  # the name to record the archive's one model under
        self.seen: set[str] = set()
        self.layout: bytes | None = None
        self.index: bytes | None = None
        self.small: dict[str, bytes] = {}  # digest -> bytes, verified
        self.small_total = 0
        self.sizes: dict[str, int] = {}  # digest -> size, of every blob the archive holds
        self.added: set[str] = set()  # blobs this import put in the store that were not there

    # -- reading -------------------------------------------------------------------------------

    def read(self, fileobj) -> list[ModelName]:
        """Import the tar read from ``fileobj``; the names of the models it recorded."""
        try:
            try:
                with tarfile.open(fileobj=fileobj, mode="r|", tarinfo=BoundedTarInfo) as tar:
                    for number, info in enumerate(tar):
                        if number >= MAX_ENTRIES:
                            raise BadArchive(f"more than {MAX_ENTRIES} entries")
                        self.take(tar, info)
            except (tarfile.TarError, EOFError) as exc:
                raise BadArchive(f"not a readable tar file ({exc})") from None
            return self.finish()
        except BaseException:
            self.undo()
            raise

    def take(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        name = entry_name(info)
        shown = repr(name[:200])
        if info.issym() or info.islnk():
            raise BadArchive(f"entry {shown} is a link; an archive holds only files")
        if info.isdir():
            if name not in _FOLDERS:
                raise BadArchive(f"unexpected folder {shown}")
            return
        if not info.isfile() or info.issparse():
            raise BadArchive(f"entry {shown} is not a plain file")
        if name in self.seen:
            raise BadArchive(f"entry {shown} appears twice")
        self.seen.add(name)
        if name == LAYOUT_FILE:
            self.layout = self.read_small(tar, info, MAX_LAYOUT_FILE)
        elif name == INDEX_FILE:
            self.index = self.read_small(tar, info, MAX_INDEX)
        elif match := _BLOB_NAME.fullmatch(name):
            self.take_blob(tar, info, "sha256:" + match.group(1))
        else:
            raise BadArchive(f"unexpected entry {shown}")

    def read_small(self, tar, info, limit: int) -> bytes:
        if info.size > limit:
            raise BadArchive(f"{info.name} is {info.size} bytes, more than the {limit} allowed")
        return b"".join(read_entry(tar, info))

    def take_blob(self, tar, info, digest: str) -> None:
        self.sizes[digest] = info.size
        if info.size <= SMALL_ENTRY:
            self.small_total += info.size
            if self.small_total > MAX_SMALL_TOTAL:
                raise BadArchive(f"more than {MAX_SMALL_TOTAL} bytes of small blobs")
            data = b"".join(read_entry(tar, info))
            if sha256_digest(data) != digest:
                raise BadArchive(
                    f"{info.name} does not hold the bytes its name says (they hash to {sha256_digest(data)})"
                )
            self.small[digest] = data
            return
        try:
            new = self.store.write_blob(digest, read_entry(tar, info), info.size)
        except DigestMismatch as exc:
            raise BadArchive(
                f"{info.name} does not hold the bytes its name says (they hash to {exc.got})"
            ) from None
        if new:
            self.added.add(digest)

    # -- recording -----------------------------------------------------------------------------

    def finish(self) -> list[ModelName]:
        self.check_layout()
        models = [(name, self.manifest(entry, name)) for name, entry in self.index_entries()]
        if self.rename is not None:
            if len(models) != 1:
                raise BadRequest(
                    f"a new name needs an archive of one model; this one holds {len(models)}"
                )
            models = [(self.rename, models[0][1])]
        needed: set[str] = set()
        for name, (manifest, _) in models:
            for layer in [manifest.config, *manifest.layers]:
                self.check_blob(name, layer)
                needed.add(layer.digest)
        for digest in sorted(needed & self.small.keys()):
            stored, _, new = self.store.put_bytes(self.small[digest])
            if stored != digest:  # cannot be: the bytes were hashed when read
                raise AssertionError(f"{digest} stored as {stored}")
            if new:
                self.added.add(digest)
        for name, (_, data) in models:
            self.store.write_manifest(name, data)
        self.undo()  # blobs in the archive that no manifest names
        return [name for name, _ in models]

    def check_layout(self) -> None:
        if self.layout is None:
            raise BadArchive(f"no {LAYOUT_FILE} file: not an OCI image layout")
        try:
            layout = json.loads(self.layout)
        except ValueError:
            layout = None
        if (
            not isinstance(layout, dict)
            or layout.get("imageLayoutVersion") != LAYOUT["imageLayoutVersion"]
        ):
            raise BadArchive(f"{LAYOUT_FILE} does not say imageLayoutVersion 1.0.0")
        if self.index is None:
            raise BadArchive(f"no {INDEX_FILE}")

    def index_entries(self) -> list[tuple[ModelName, dict]]:
        try:
            index = json.loads(self.index)
        except ValueError:
            raise BadArchive(f"{INDEX_FILE} is not JSON") from None
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list) or not entries:
            raise BadArchive(f"{INDEX_FILE} lists no manifests")
        if len(entries) > MAX_MODELS:
            raise BadArchive(f"{INDEX_FILE} lists more than {MAX_MODELS} manifests")
        found, keys = [], set()
        for entry in entries:
            annotations = entry.get("annotations") if isinstance(entry, dict) else None
            ref = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
            name = ModelName.parse(ref) if isinstance(ref, str) else None
            if name is None:
                raise BadArchive(f"a manifest in {INDEX_FILE} has no valid model name ({REF_NAME})")
            if name.key() in keys:
                raise BadArchive(f"{INDEX_FILE} names {name} twice")
            keys.add(name.key())
            found.append((name, entry))
        return found

    def manifest(self, entry: dict, name: ModelName) -> tuple[mf.Manifest, bytes]:
        digest, size = entry.get("digest"), entry.get("size")
        if entry.get("mediaType") not in MANIFEST_MEDIA_TYPES:
            raise BadArchive(
                f"the manifest of {name} has media type {str(entry.get('mediaType'))[:100]!r}"
            )
        if not isinstance(digest, str) or digest not in self.sizes:
            raise BadArchive(f"the manifest of {name} is not in the archive")
        data = self.small.get(digest)
        if data is None:
            raise BadArchive(f"the manifest of {name} is larger than {SMALL_ENTRY} bytes")
        if size != len(data):
            raise BadArchive(
                f"the manifest of {name} is {len(data)} bytes, {INDEX_FILE} says {size}"
            )
        try:
            return mf.Manifest.parse(data), data
        except BadRequest as exc:
            raise BadArchive(f"the manifest of {name}: {exc.message}") from None

    def check_blob(self, name: ModelName, layer: mf.Layer) -> None:
        size = self.sizes.get(layer.digest)
        if size is None:
            size = self.store.blob_size(layer.digest)  # the store may have it from another model
            if size is None:
                raise BadArchive(
                    f"the manifest of {name} names blob {layer.digest}, which the archive does not hold"
                )
        if size != layer.size:
            raise BadArchive(
                f"blob {layer.digest} is {size} bytes, the manifest of {name} says {layer.size}"
            )

    def undo(self) -> None:
        """Remove the blobs this import added that no manifest references (all of them, when
        no manifest was recorded)."""
        if self.added:
            self.store.collect_garbage(self.added)
            self.added = set()


def import_archive(store, fileobj, rename: ModelName | None = None) -> list[ModelName]:
    """Import the tar read from ``fileobj``; with ``rename``, its one model under that name."""
    return Unpacker(store, rename).read(fileobj)
