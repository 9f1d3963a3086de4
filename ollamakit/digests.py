"""Content digests: the one place that turns a digest into a file name."""

from __future__ import annotations

import hashlib
import re
from typing import TypeGuard

from .errors import InvalidDigest

# \Z, not $: "$" also matches before a final newline, so "sha256:<hex>\n" would pass.
_DIGEST = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})\Z")


def parse_digest(digest: str) -> str:
    """Return the canonical ``sha256:<hex>`` form, or raise InvalidDigest.

    Hex case is preserved: a blob's digest is computed in lower case, so an upper-case
    digest simply never matches a blob (as in Ollama) rather than aliasing one.
    """
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if not match:
        raise InvalidDigest()
    return "sha256:" + match.group(1)


def blob_filename(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>``; refuses anything that is not a digest."""
    return "sha256-" + parse_digest(digest)[7:]


def is_digest(digest: object) -> TypeGuard[str]:
    return isinstance(digest, str) and bool(_DIGEST.match(digest))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
