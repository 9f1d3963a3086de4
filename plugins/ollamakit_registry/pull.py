"""``pull_model``: a model from a registry into the store, as a stream of progress objects.

Nothing enters the store until every blob has arrived and matched its digest: a failed pull
leaves the store as it was (its finished parts wait in ``-partial`` files for the next try).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

from ollamakit import manifest as mf
from ollamakit.digests import sha256_digest
from ollamakit.errors import BadRequest, OllamaError
from ollamakit.names import ModelName

from .client import OCI_MANIFEST, Registry, RegistryError
from .download import DigestMismatch, Downloads
from .progress import progress, watch

MAX_BLOB = 1 << 40  # 1 TiB: no model layer is bigger; a manifest claiming so is lying
MAX_MODEL = 4 << 40
CONFIG_TYPES = (mf.CONFIG_MEDIA_TYPE, "application/vnd.oci.image.config.v1+json")


def parse_name(name) -> ModelName:
    parsed = (
        name
        if isinstance(name, ModelName)
        else ModelName.parse(name)
        if isinstance(name, str)
        else None
    )
    if parsed is None:
        raise BadRequest("invalid model name")
    return parsed


def parse_remote_manifest(data: bytes, declared_digest: str | None = None) -> mf.Manifest:
    """A registry's manifest, checked before any of it is trusted."""
    if (
        declared_digest
        and declared_digest.startswith("sha256:")
        and declared_digest != sha256_digest(data)
    ):
        raise RegistryError(
            "pull model manifest: the manifest does not match the registry's Docker-Content-Digest"
        )
    try:
        manifest = mf.Manifest.parse(data)
        media_type = json.loads(data).get("mediaType", mf.MANIFEST_MEDIA_TYPE)
    except BadRequest as exc:
        raise RegistryError(f"pull model manifest: {exc}") from None
    if media_type not in (mf.MANIFEST_MEDIA_TYPE, OCI_MANIFEST):
        raise RegistryError(
            f"pull model manifest: unsupported manifest type {str(media_type)[:100]!r}"
        )
    if manifest.config.media_type not in CONFIG_TYPES:
        raise RegistryError(
            f"pull model manifest: unsupported config type {manifest.config.media_type[:100]!r}"
        )
    for layer in manifest.layers:
        if not layer.media_type.startswith(mf.MEDIA_PREFIX):
            raise RegistryError(
                f"pull model manifest: {layer.media_type[:100]!r} is not a model layer"
            )
    for layer in (manifest.config, *manifest.layers):
        if layer.size > MAX_BLOB:
            raise RegistryError(
                f"pull model manifest: layer {layer.digest} claims {layer.size} bytes"
            )
    if manifest.size > MAX_MODEL:
        raise RegistryError(f"pull model manifest: the model claims {manifest.size} bytes")
    return manifest


def unique_blobs(manifest: mf.Manifest) -> list[mf.Layer]:
    """Layers then the config, each digest once (a digest listed twice with two sizes is a lie)."""
    seen: dict[str, mf.Layer] = {}
    for layer in (*manifest.layers, manifest.config):
        if layer.digest in seen and seen[layer.digest].size != layer.size:
            raise RegistryError(f"pull model manifest: {layer.digest} is listed with two sizes")
        seen.setdefault(layer.digest, layer)
    return list(seen.values())


def blobs_dir(kernel):
    path = kernel.settings.models_dir / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_space(kernel, missing: list[mf.Layer]) -> None:
    need = sum(layer.size for layer in missing)
    free = shutil.disk_usage(blobs_dir(kernel)).free
    if need > free:
        raise OllamaError(
            f"not enough free disk space to pull: {need} bytes needed, {free} available"
        )


def pull_model(kernel, name, insecure: bool = False) -> Iterator[dict]:
    """Pull ``name`` (a string or ``ModelName``) into ``kernel.store``; yields progress dicts.

    ``insecure`` (or an explicit ``http://`` in the name) reaches the registry over plain HTTP.
    Raises ``BadRequest`` for an invalid name before anything is yielded, and an
    ``OllamaError`` mid-stream when the registry or its data fail us.
    """
    name = parse_name(name)
    return _pull(kernel, name, insecure or name.scheme == "http")


def _pull(kernel, name: ModelName, insecure: bool) -> Iterator[dict]:
    yield {"status": "pulling manifest"}
    store = kernel.store
    registry = Registry(name, insecure)
    downloads = Downloads.of(kernel)
    started = []
    try:
        data, declared = registry.get_manifest()
        manifest = parse_remote_manifest(data, declared)
        blobs = unique_blobs(manifest)
        _check_space(kernel, [layer for layer in blobs if not store.has_blob(layer.digest)])
        failed = None
        for layer in blobs:
            status = f"pulling {layer.digest[7:19]}"
            if store.has_blob(layer.digest):
                yield progress(status, layer.digest, layer.size, layer.size)
                continue
            download = downloads.get(store, registry, blobs_dir(kernel), layer.digest, layer.size)
            started.append(download)
            yield from watch(download, status, layer.digest, layer.size)
            if isinstance(download.error, DigestMismatch):
                failed = download.error
                break
            if download.error is not None:
                raise download.error
        yield {"status": "verifying sha256 digest"}
        if failed is not None:
            raise failed
        for download in started:
            download.commit(store)
        yield {"status": "writing manifest"}
        previous = store.get(name)
        store.write_manifest(name, data)
        if previous is not None and not kernel.settings.noprune:
            unused = previous.manifest.digests() - manifest.digests()
            if unused:
                yield {"status": "removing unused layers"}
                store.collect_garbage(unused)
        yield {"status": "success"}
    finally:
        registry.close()
        for download in started:
            if download.done.is_set() and (download.committed or download.error is not None):
                downloads.forget(download)
