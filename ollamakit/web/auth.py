"""API keys: with any configured, every request needs one, whatever its path or method.

The check runs in the app's middleware, before routing, so it covers every route a plugin adds
(``/api/*``, ``/v1/*``, ``/v2/*``), paths no route serves (a 401, not a 404, so the routes a server
has stay private), and every method, ``HEAD`` and ``OPTIONS`` included. It lives in the kernel, not
in a plugin, so that a plugin failing to load can never leave a server that was given keys open.

Only the probes can be opened, one by one (``OLLAMAKIT_OPEN_PROBES``): liveness (``GET`` and
``HEAD /``) and readiness (``GET`` and ``HEAD /health``).

A transport that receives bodies before the app runs asks ``ApiKeys.allows`` too, so that a caller
without a key cannot make it spool a large upload (the ``http`` transport refuses it with the same
401 before reading the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from ..config import PROBE_PATHS, read_key_file
from ..errors import OllamaError

CHALLENGE = 'Bearer realm="ollamakit"'
UNAUTHORIZED = "unauthorized: this server needs an API key, sent as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


class ApiKeyConfigError(OllamaError):
    """The keys cannot be read: the server must not start without them."""


def load_keys(settings) -> tuple[bytes, ...]:
    """The SHA-256 of every accepted key (``OLLAMAKIT_API_KEYS`` and the key file)."""
    keys = list(settings.api_keys)
    if settings.api_keys_file is not None:
        try:
            from_file = read_key_file(settings.api_keys_file)
        except (OSError, ValueError) as exc:
            raise ApiKeyConfigError(
                f"cannot read the API key file {settings.api_keys_file}: {exc}"
            ) from None
        if not from_file:
            raise ApiKeyConfigError(f"the API key file {settings.api_keys_file} holds no key")
        keys += from_file
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (x_api_key or "").strip() or None


def refusal_body(path: str) -> dict:
    """Ollama's ``{"error": message}``; under ``/v1/`` the error object OpenAI's and Anthropic's
    clients both read their message from (the check runs before a route says which API it is)."""
    if path.startswith("/v1/"):
        return {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": UNAUTHORIZED,
                "code": "invalid_api_key",
            },
        }
    return {"error": UNAUTHORIZED}


class ApiKeys:
    """The accepted keys and the probes open without one."""

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
        # WSGI hands header values over as latin-1 text: these are the bytes the client sent.
        presented = hashlib.sha256(key.encode("latin-1", "replace")).digest()
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

    def allows(
        self, method: str, path: str, authorization: str | None, x_api_key: str | None
    ) -> bool:
        path = "/" + path.lstrip("/")
        if method in ("GET", "HEAD") and (path.rstrip("/") or "/") in self.open:
            return True
        return self.accepts(presented_key(authorization, x_api_key))


class ApiKeyMiddleware:
    """Refuses, with a 401 and a ``WWW-Authenticate`` challenge, any request without a valid key."""

    def __init__(self, keys: ApiKeys):
        self.keys = keys

    def process_request(self, req, resp):
        if self.keys.allows(
            req.method, req.path, req.get_header("Authorization"), req.get_header("X-Api-Key")
        ):
            return
        resp.status = 401
        resp.set_header("WWW-Authenticate", CHALLENGE)
        resp.content_type = "application/json; charset=utf-8"
        resp.data = b"" if req.method == "HEAD" else json.dumps(refusal_body(req.path)).encode()
        resp.complete = True
