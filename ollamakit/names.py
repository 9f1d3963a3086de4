"""Model names, parsed with Ollama's rules: ``[scheme://][host/][namespace/]model[:tag]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# Each part starts with a letter, digit or underscore; the allowed tail differs per part.
_PARTS = {
    "host": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*\Z"), 350),
    "namespace": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*\Z"), 80),
    "model": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z"), 80),
    "tag": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z"), 80),
}


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = "https"

    @classmethod
    def parse(cls, text: str) -> ModelName | None:
        """Parse ``text``, filling defaults; None when any part is invalid."""
        if not isinstance(text, str) or not text or "@" in text:
            return None
        scheme = "https"
        if "://" in text:
            scheme, text = text.split("://", 1)
            if scheme not in ("http", "https"):
                return None
        rest, tag = text, DEFAULT_TAG
        colon, slash = rest.rfind(":"), rest.rfind("/")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
        host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
        pieces = rest.split("/")
        if len(pieces) > 3:
            return None
        model = pieces[-1]
        if len(pieces) >= 2:
            namespace = pieces[-2]
        if len(pieces) == 3:
            host = pieces[0]
        name = cls(host, namespace, model, tag, scheme)
        return name if name.is_valid() else None

    def is_valid(self) -> bool:
        for part, (pattern, limit) in _PARTS.items():
            value = getattr(self, part)
            if not (1 <= len(value) <= limit and pattern.match(value)):
                return False
        return True

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """The manifest path parts: host/namespace/model/tag."""
        return (self.host, self.namespace, self.model, self.tag)

    def key(self) -> tuple[str, ...]:
        """Names match case-insensitively, part by part."""
        return tuple(p.lower() for p in self.parts)

    @property
    def repository(self) -> str:
        return f"{self.namespace}/{self.model}"

    def display_shortest(self) -> str:
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    def display_full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def __str__(self) -> str:
        return self.display_shortest()
