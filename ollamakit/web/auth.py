"""API keys: with any configured, every request needs one, whatever its path or method.

The check runs in the app's middleware, before routing, so it covers every route a plugin adds
(``/api/*``, ``/v1/*``, ``/v2/*``), paths no route serves (a 401, not a 404, so the routes a server
has stay private), and every method, ``HEAD`` and ``OPTIONS`` included. It lives in the kernel, not
in a plugin, so that a plugin failing to load can never leave a server that was given keys open.

Only the probes can be opened, one by one (``OLLAMAKIT_OPEN_PROBES``): liveness (``GET`` and
``HEAD /``) and readiness (``GET`` and ``HEAD /health``).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from ..config import PROBE_PATHS, read_key_file
from ..errors import OllamaError

CHALLENGE = 'Bearer realm="ollamakit"'
UNAUTHORIZED = (
    "unauthorized: this server needs an API key, sent as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
)


class ApiKeyConfigError(OllamaError):
    """The keys cannot be read: the server must not start without them."""


def load_keys(settings) -> tuple[bytes, ...]:
    """The SHA-256 of every accepted key (``OLLAMAKIT_API_KEYS`` and the key file)."""
    keys = list(settings.api_keys)
    if settings.api_keys_file is not None:
        try:
            from_file = read_key_file(settings.api_keys_file)
        except (OSError, ValueError) as exc:
            raise ApiKeyConfigError(f"cannot read the API key file {settings.api_keys_file}: {exc}") from None
        if not from_file:
            raise ApiKeyConfigError(f"the API key file {settings.api_keys_file} holds no key")
        keys += from_file
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


def presented_key(req) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    authorization = req.get_header("Authorization") or ""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (req.get_header("X-Api-Key") or "").strip() or None


def refusal_body(path: str) -> dict:
    """Ollama's ``{"error": message}``; under ``/v1/`` the error object OpenAI's and Anthropic's
    clients both read their message from (the check runs before a route says which API it is)."""
    if path.startswith("/v1/"):
        return {"type": "error", "error": {"type": "authentication_error", "message": UNAUTHORIZED, "code": "invalid_api_key"}}
    return {"error": UNAUTHORIZED}


class ApiKeyMiddleware:
    """Refuses, with a 401 and a ``WWW-Authenticate`` challenge, any request without a valid key."""

    def __init__(self, settings):
        self.digests = load_keys(settings)
        self.open = {PROBE_PATHS[probe] for probe in settings.open_probes if probe in PROBE_PATHS}

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def accepts(self, key: str | None) -> bool:
        """Compares against every key, in constant time for each: the answer's timing says
        neither which key nor how much of one matched."""
        if key is None:
            return False
        presented = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

    def process_request(self, req, resp):
        if req.method in ("GET", "HEAD") and req.path in self.open:
            return
        if self.accepts(presented_key(req)):
            return
        resp.status = 401
        resp.set_header("WWW-Authenticate", CHALLENGE)
        resp.content_type = "application/json; charset=utf-8"
        resp.data = b"" if req.method == "HEAD" else json.dumps(refusal_body(req.path)).encode()
        resp.complete = True
