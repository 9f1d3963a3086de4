"""The archive: an OCI image layout (https://github.com/opencontainers/image-spec, image-layout.md)
in a plain tar, one image per model:

    oci-layout               {"imageLayoutVersion": "1.0.0"}
    index.json               an image index; each entry is a model's manifest, named by the
                             annotation org.opencontainers.image.ref.name (host/namespace/model:tag)
    blobs/sha256/<hex>       the manifests, configs and layers, each named by its sha256

The manifests are Ollama's own (the registry's media types), so the blobs are the bytes a pull
from the registry would store. Tools that read OCI layouts (skopeo, oras, crane) can read it.

Export writes the tar by hand, as a stream whose length is known before the first byte: USTAR
headers, entries in a fixed order with a fixed time, so one model always gives the same bytes.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from ollamakit import manifest as mf
from ollamakit.digests import sha256_digest

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS = "blobs/sha256/"
LAYOUT = {"imageLayoutVersion": "1.0.0"}
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_MEDIA_TYPES = (mf.MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.manifest.v1+json")
BLOCK = 512
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    data: bytes | None = None  # small entries; else the blob ``digest`` is read from the store
    digest: str | None = None


def index_bytes(models: list[tuple[str, bytes]]) -> bytes:
    """``index.json`` for (full model name, manifest bytes) pairs."""
    manifests = [
        {
            "mediaType": mf.MANIFEST_MEDIA_TYPE,
            "digest": sha256_digest(data),
            "size": len(data),
            "annotations": {REF_NAME: name},
        }
        for name, data in models
    ]
    return json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}, indent=2
    ).encode()


def entries(store, models: list[tuple[str, bytes]]) -> list[Entry]:
    """Every entry of the archive of ``models``: layout, index, then each blob once."""
    layout = json.dumps(LAYOUT).encode()
    index = index_bytes(models)
    found = [Entry(LAYOUT_FILE, len(layout), layout), Entry(INDEX_FILE, len(index), index)]
    seen: set[str] = set()
    for _, data in models:
        digest = sha256_digest(data)
        if digest not in seen:
            seen.add(digest)
            found.append(Entry(BLOBS + digest.split(":", 1)[1], len(data), data))
        manifest = mf.Manifest.parse(data)
        for layer in [manifest.config, *manifest.layers]:
            if layer.digest not in seen:
                seen.add(layer.digest)
                found.append(
                    Entry(BLOBS + layer.digest.split(":", 1)[1], layer.size, digest=layer.digest)
                )
    return found


def padded(size: int) -> int:
    return -size % BLOCK


def archive_size(found: list[Entry]) -> int:
    return sum(BLOCK + entry.size + padded(entry.size) for entry in found) + 2 * BLOCK


def header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.size, info.mode, info.mtime = entry.size, 0o644, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def stream(store, found: list[Entry]) -> Iterator[bytes]:
    """The tar's bytes. A blob that is not the size its manifest says (changed under us) ends
    the stream early: the client sees fewer bytes than the length announced."""
    for entry in found:
        yield header(entry)
        if entry.data is not None:
            yield entry.data
        else:
            left = entry.size
            with store.storage.open_blob(entry.digest) as fh:
                while left > 0:
                    chunk = fh.read(min(CHUNK, left))
                    if not chunk:
                        raise OSError(f"blob {entry.digest} is shorter than its manifest says")
                    left -= len(chunk)
                    yield chunk
        if padded(entry.size):
            yield bytes(padded(entry.size))
    yield bytes(2 * BLOCK)
