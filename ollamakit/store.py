"""The model store: Ollama's semantics (hashing, case-insensitive names, garbage collection)
on top of whichever ``Storage`` driver holds the bytes."""

from __future__ import annotations

import builtins
import errno
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from . import manifest as mf
from .blobs import SCRATCH_PREFIX, BlobWriter
from .digests import parse_digest
from .errors import BadRequest, DigestMismatch, NotFound, StoreNotWritable
from .headers import ModelHeader, read_header, read_header_from
from .names import ModelName

CHUNK = 1 << 20
MAX_TEXT_LAYER = 64 * 1024 * 1024  # template/system/params/messages/license blobs are small
# Model headers kept (a large vocabulary makes one tens of MB): what a chat reads on every
# request and show reads once.
HEADER_CACHE_SIZE = 4


log = logging.getLogger(__name__)

# The conditions under which a store cannot be written, in Go's words for them (which Ollama's
# errors carry): a client is told which, never the path or the rest of the exception.
UNWRITABLE = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def unwritable(exc: BaseException) -> StoreNotWritable | None:
    """The client's error for an OSError that means the store cannot be written, else None."""
    reason = UNWRITABLE.get(exc.errno) if isinstance(exc, OSError) and exc.errno else None
    return StoreNotWritable(f"cannot write to the model store: {reason}") if reason else None


@contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn a write that fails for want of space or permission into ``StoreNotWritable``."""
    try:
        yield
    except OSError as exc:
        error = unwritable(exc)
        if error is None:
            raise
        log.error("the model store cannot be written (%s): %s", what, exc)
        raise error from None


def _writes(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with writing(method.__name__):
            return method(self, *args, **kwargs)

    return wrapper


@dataclass
class LocalModel:
    """A model as stored: its name, manifest and the layers' contents on demand."""

    store: ModelStore
    name: ModelName
    manifest: mf.Manifest
    manifest_bytes: bytes
    mtime: float

    @property
    def digest(self) -> str:
        return mf.manifest_digest(self.manifest_bytes)

    @property
    def short_name(self) -> str:
        return self.name.display_shortest()

    @property
    def modified_at(self) -> str:
        return format_local_time(self.mtime)

    @cached_property
    def config(self) -> dict:
        data = self.store.read_small_blob(self.manifest.config.digest)
        try:
            config = json.loads(data)
        except ValueError:
            config = {}
        return config if isinstance(config, dict) else {}

    def _texts(self, *media_types: str) -> list[str]:
        return [
            self.store.read_small_blob(layer.digest).decode("utf-8", "replace")
            for layer in self.manifest.layers
            if layer.media_type in media_types
        ]

    @property
    def model_layer(self) -> mf.Layer | None:
        layers = self.manifest.find(mf.MODEL)
        return layers[0] if layers else None

    @property
    def header(self) -> ModelHeader | None:
        """The model file's facts (``ModelStore.model_header``); None without a model layer."""
        layer = self.model_layer
        return self.store.model_header(layer.digest) if layer else None

    @property
    def model_path(self) -> Path | None:
        layer = self.model_layer
        return self.store.blob_path(layer.digest) if layer else None

    @property
    def adapter_paths(self) -> list[Path]:
        return [self.store.blob_path(layer.digest) for layer in self.manifest.find(mf.ADAPTER)]

    @cached_property
    def template(self) -> str | None:
        texts = self._texts(mf.TEMPLATE, mf.PROMPT)
        return texts[-1] if texts else None

    @cached_property
    def system(self) -> str:
        texts = self._texts(mf.SYSTEM)
        return texts[-1] if texts else ""

    @cached_property
    def params(self) -> dict:
        texts = self._texts(mf.PARAMS)
        try:
            value = json.loads(texts[-1]) if texts else {}
        except ValueError:
            value = {}
        return value if isinstance(value, dict) else {}

    @cached_property
    def messages(self) -> list[dict]:
        texts = self._texts(mf.MESSAGES)
        try:
            value = json.loads(texts[-1]) if texts else []
        except ValueError:
            value = []
        return value if isinstance(value, list) else []

    @cached_property
    def licenses(self) -> list[str]:
        return self._texts(mf.LICENSE)


def format_local_time(timestamp: float) -> str:
    """RFC 3339 in the local zone with its offset, as Ollama prints ``modified_at``."""
    text = datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="microseconds")
    stamp, offset = text[:26], text[26:]
    return stamp + ("Z" if offset in ("+00:00", "") else offset)


def format_utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ModelStore:
    def __init__(self, kernel):
        self.kernel = kernel
        self.storage = kernel.storage
        self._lock = threading.RLock()
        self._headers: OrderedDict[str, ModelHeader | None] = OrderedDict()
        self._headers_lock = threading.Lock()

    # -- blobs ---------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.storage.has_blob(parse_digest(digest))

    def blob_path(self, digest: str) -> Path:
        return self.storage.blob_path(parse_digest(digest))

    def blob_size(self, digest: str) -> int | None:
        return self.storage.blob_size(parse_digest(digest))

    def model_header(self, digest: str) -> ModelHeader | None:
        """The ``ModelHeader`` of a stored model file (hook ``read_model_header``), or None
        when the blob is absent or in no format an installed plugin reads. Cached by digest:
        blobs never change. A damaged file raises ``InvalidModelFile``."""
        digest = parse_digest(digest)
        with self._headers_lock:
            if digest in self._headers:
                self._headers.move_to_end(digest)
                return self._headers[digest]
        size = self.storage.blob_size(digest)
        if size is None:
            return None  # not remembered: it may be uploaded yet
        # The header alone, read from the blob's start: a remote store serves that by ranges,
        # so a replica that never ran the model does not download it to show it.
        try:
            with self.storage.open_blob(digest) as fh:
                header = read_header_from(self.kernel, fh, size, digest)
        except FileNotFoundError:
            return None
        if header is None:  # a format read only from a local file, or a header over the bound
            header = read_header(self.kernel, self.storage.blob_path(digest), digest)
        with self._headers_lock:
            self._headers[digest] = header
            while len(self._headers) > HEADER_CACHE_SIZE:
                self._headers.popitem(last=False)
        return header

    def read_small_blob(self, digest: str, limit: int = MAX_TEXT_LAYER) -> bytes:
        size = self.storage.blob_size(digest)
        if size is None:
            raise NotFound(f"blob {digest} not found")
        if size > limit:
            raise BadRequest(f"blob {digest} is {size} bytes, more than {limit} allowed here")
        with self.storage.open_blob(digest) as fh:
            return fh.read(limit + 1)[:limit]

    @_writes
    def scratch_file(self, suffix: str = "") -> Path:
        """A new empty temporary file beside the blobs; the caller removes or commits it."""
        fd, name = tempfile.mkstemp(
            prefix=SCRATCH_PREFIX, suffix=suffix, dir=self.storage.scratch_dir()
        )
        os.close(fd)
        return Path(name)

    @contextmanager
    def blob_writer(self, digest: str, size: int | None = None) -> Iterator[BlobWriter]:
        """The storage's writer for blob ``digest`` (``Storage.blob_writer``): write chunks in
        order, then ``commit()``; leaving the block without a commit leaves nothing behind. A
        store that cannot be written is a ``StoreNotWritable``."""
        with writing("blob_writer"), self.storage.blob_writer(parse_digest(digest), size) as out:
            yield out

    def write_blob(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> bool:
        """Stream ``chunks`` into the store while hashing; commit only if they hash to
        ``digest``. Returns True when the blob is new. A mismatch, or an exception from
        ``chunks`` (a client that went away), leaves the store untouched."""
        with self.blob_writer(digest, size) as out:
            for chunk in chunks:
                out.write(chunk)
            return out.commit()

    @_writes
    def adopt_blob(self, digest: str, path: Path, sha256_hex: str) -> bool:
        """Commit a scratch file whose bytes were already hashed as they arrived (a transport's
        ``ReceivedBody``): the same checks and durability as ``write_blob``, without reading
        the file again. ``path`` is consumed either way; returns True when the blob is new."""
        path = Path(path)
        if path.parent.resolve() != Path(self.storage.scratch_dir()).resolve():
            raise ValueError(f"{path} is not a scratch file of this store")  # and is left alone
        try:
            return self._commit(parse_digest(digest), "sha256:" + sha256_hex, path)
        finally:
            path.unlink(missing_ok=True)

    def _commit(self, digest: str, got: str, path: Path) -> bool:
        """Name the hashed scratch file ``path`` as blob ``digest``, if that is what it holds."""
        if got != digest:
            raise DigestMismatch(digest, got)
        # On disk before it gets its name: after a crash a blob is whole or absent.
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.storage.put_blob(digest, path)

    def add_file(self, path: Path) -> tuple[str, int]:
        """Hash a local scratch file and move it in as a blob; returns (digest, size)."""
        digest, size, _ = self.put_file(path)
        return digest, size

    @_writes
    def put_file(self, path: Path) -> tuple[str, int, bool]:
        """As ``add_file``, also saying whether the blob is new (create reports which)."""
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK * 8):
                sha.update(block)
        digest = "sha256:" + sha.hexdigest()
        size = path.stat().st_size
        return digest, size, self.storage.put_blob(digest, path)

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        digest, size, _ = self.put_bytes(data)
        return digest, size

    @_writes
    def put_bytes(self, data: bytes) -> tuple[str, int, bool]:
        """Store ``data`` as a blob; returns (digest, size, whether it is new)."""
        temp = self.scratch_file()
        try:
            temp.write_bytes(data)
            return self.put_file(temp)
        finally:
            temp.unlink(missing_ok=True)

    # -- manifests -----------------------------------------------------------------------------

    def _existing_parts(self, name: ModelName) -> tuple[str, str, str, str] | None:
        """The stored spelling of ``name``: exact first, then case-insensitive."""
        if self.storage.read_manifest(name.parts) is not None:
            return name.parts
        wanted = name.key()
        for parts, _ in self.storage.list_manifests():
            if tuple(p.lower() for p in parts) == wanted:
                return parts
        return None

    def get(self, name: ModelName | str) -> LocalModel | None:
        parsed = ModelName.parse(name) if isinstance(name, str) else name
        if parsed is None:
            return None
        parts = self._existing_parts(parsed)
        if parts is None:
            return None
        data = self.storage.read_manifest(parts)
        if data is None:
            return None
        mtime = next((m for p, m in self.storage.list_manifests() if p == parts), time.time())
        return LocalModel(self, ModelName(*parts), mf.Manifest.parse(data), data, mtime)

    def list(self) -> builtins.list[LocalModel]:
        models = []
        for parts, mtime in self.storage.list_manifests():
            data = self.storage.read_manifest(parts)
            try:
                manifest = mf.Manifest.parse(data or b"")
            except BadRequest:
                continue  # a corrupt manifest is skipped, not fatal to listing
            models.append(LocalModel(self, ModelName(*parts), manifest, data, mtime))
        models.sort(key=lambda m: m.mtime, reverse=True)
        return models

    @_writes
    def write_manifest(self, name: ModelName, manifest: mf.Manifest | bytes) -> None:
        data = manifest if isinstance(manifest, bytes) else manifest.to_bytes()
        parsed = mf.Manifest.parse(data)
        missing = [d for d in parsed.digests() if not self.storage.has_blob(d)]
        if missing:
            raise BadRequest(f"manifest references missing blob {missing[0]}")
        with self._lock:
            parts = self._existing_parts(name) or name.parts
            parts = self.storage.write_manifest(parts, data) or parts
        self.kernel.hook.on_model_created(kernel=self.kernel, name=ModelName(*parts))

    def copy(self, source: ModelName, destination: ModelName) -> None:
        model = self.get(source)
        if model is None:
            raise NotFound(f'model "{source.display_shortest()}" not found')
        self.write_manifest(destination, model.manifest_bytes)

    @_writes
    def delete(self, name: ModelName) -> None:
        with self._lock:
            model = self.get(name)
            if model is None:
                raise NotFound(f"model '{name}' not found")
            self.storage.delete_manifest(model.name.parts)
            self.collect_garbage(model.manifest.digests())
        self.kernel.hook.on_model_deleted(kernel=self.kernel, name=model.name)

    def referenced_digests(self) -> set[str] | None:
        """Every digest any manifest references; None if a manifest is corrupt (then nothing
        may be deleted, because we cannot know what it needs)."""
        referenced = set()
        for parts, _ in self.storage.list_manifests():
            try:
                referenced |= mf.Manifest.parse(self.storage.read_manifest(parts) or b"").digests()
            except BadRequest:
                return None
        return referenced

    @_writes
    def collect_garbage(self, candidates: Iterable[str]) -> builtins.list[str]:
        """Delete those of ``candidates`` that no manifest references any more."""
        with self._lock:
            referenced = self.referenced_digests()
            if referenced is None:
                return []
            removed = [
                d for d in set(candidates) if d not in referenced and self.storage.has_blob(d)
            ]
            for digest in removed:
                self.storage.delete_blob(digest)
            return removed

    def prune(self, grace_seconds: float = 3600.0) -> builtins.list[str]:
        """Start-up pruning: blobs no manifest references, older than the grace period. A
        store that cannot be written is served as it is (reads work), with a warning."""
        try:
            return self._prune(grace_seconds)
        except OSError as exc:
            log.warning("start-up pruning stopped: the model store cannot be written (%s)", exc)
            return []

    def _prune(self, grace_seconds: float) -> builtins.list[str]:
        with self._lock:
            referenced = self.referenced_digests()
            if referenced is None:
                return []
            now, removed = time.time(), []
            for digest in list(self.storage.list_blobs()):
                if digest in referenced:
                    continue
                try:
                    stored = self.storage.blob_mtime(digest)
                except OSError:
                    continue
                if stored is not None and now - stored > grace_seconds:
                    self.storage.delete_blob(digest)
                    removed.append(digest)
        return removed

    def remove_leftovers(self) -> None:
        """Start-up: remove the temporary files of processes that ended without cleaning up
        (the driver knows which are whose; a live process's are never touched)."""
        try:
            self.storage.remove_leftovers()
        except OSError as exc:
            log.warning("temporary files left by ended processes stay: %s", exc)
