"""Manifests (Docker image manifest v2, schema 2) and Ollama's layer media types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .digests import is_digest, sha256_digest
from .errors import BadRequest

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MEDIA_PREFIX = "application/vnd.ollama.image."
MODEL = MEDIA_PREFIX + "model"
PROJECTOR = MEDIA_PREFIX + "projector"
ADAPTER = MEDIA_PREFIX + "adapter"
DRAFT = MEDIA_PREFIX + "draft"
TEMPLATE = MEDIA_PREFIX + "template"
PROMPT = MEDIA_PREFIX + "prompt"  # legacy name for a template: read, never written
SYSTEM = MEDIA_PREFIX + "system"
PARAMS = MEDIA_PREFIX + "params"
MESSAGES = MEDIA_PREFIX + "messages"
LICENSE = MEDIA_PREFIX + "license"

# A manifest bigger than this is not a manifest: refuse before parsing.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_LAYERS = 4096


def go_json(value, indent=None) -> str:
    """JSON the way Go's encoding/json writes it, so stored blobs hash like Ollama's."""
    text = json.dumps(
        value, ensure_ascii=False, separators=(",", ":") if indent is None else None, indent=indent
    )
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


@dataclass
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str = ""
    name: str = ""

    def to_dict(self) -> dict:
        data = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            data["from"] = self.from_
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data) -> Layer:
        if not isinstance(data, dict):
            raise BadRequest("invalid manifest: layer is not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not media_type or len(media_type) > 256:
            raise BadRequest("invalid manifest: bad layer media type")
        if not is_digest(digest) or not digest.startswith("sha256:") or digest != digest.lower():
            raise BadRequest(f"invalid manifest: bad layer digest {str(digest)[:80]!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest("invalid manifest: bad layer size")
        from_, name = data.get("from", ""), data.get("name", "")
        if not isinstance(from_, str) or not isinstance(name, str):
            raise BadRequest("invalid manifest: bad layer annotation")
        return cls(media_type, digest, size, from_, name)


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_bytes(self) -> bytes:
        """Compact with a trailing newline, as create writes it."""
        return (go_json(self.to_dict()) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Strictly validate a manifest from disk or a registry."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise BadRequest("invalid manifest: too large")
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"invalid manifest: {exc}") from None
        if not isinstance(obj, dict) or obj.get("schemaVersion") != 2:
            raise BadRequest("invalid manifest: schemaVersion must be 2")
        layers = obj.get("layers") or []
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise BadRequest("invalid manifest: bad layers")
        return cls(Layer.from_dict(obj.get("config")), [Layer.from_dict(layer) for layer in layers])

    @property
    def size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)

    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}

    def find(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]


def manifest_digest(data: bytes) -> str:
    """The model digest shown by tags and ps: sha256 of the manifest file's bytes, bare hex."""
    return sha256_digest(data)[7:]
