"""API keys: with any configured, every request needs one, whatever its path or method.

The check runs in the app's middleware, before routing, so it covers every route a plugin adds
(``/api/*``, ``/v1/*``, ``/v2/*``), paths no route serves (a 401, not a 404, so the routes a server
has stay private), and every method, ``HEAD`` and ``OPTIONS`` included. It lives in the kernel, not
in a plugin, so that a plugin failing to load can never leave a server that was given keys open.

The registry routes (``/v2/*``) also take the key as the password of HTTP Basic, any user name,
and challenge with ``Basic``: OCI clients (docker, skopeo, oras) send credentials only after a
401 whose challenge they know, and log in with a user name and a password. A Bearer challenge
there would send them to fetch a token from its realm, a token service this server does not have.

Only the probes can be opened, one by one (``OLLAMAKIT_OPEN_PROBES``): liveness (``GET`` and
``HEAD /``) and readiness (``GET`` and ``HEAD /health``).

The key file is read again when it changes (looked at no more than once a second, on a request),
so keys are added and revoked without a restart. A file that can no longer be read, or holds no
key, leaves only ``OLLAMAKIT_API_KEYS`` accepted (none, when it names none) until it is fixed:
the server never opens because its file went wrong.

A transport that receives bodies before the app runs asks ``ApiKeys.allows`` too, so that a caller
without a key cannot make it spool a large upload (the ``http`` transport refuses it with the same
401 before reading the body).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from pathlib import Path

from ..config import PROBE_PATHS, read_key_file
from ..errors import OllamaError

log = logging.getLogger("ollamakit.web")

CHALLENGE = 'Bearer realm="ollamakit"'
REGISTRY_CHALLENGE = 'Basic realm="ollamakit"'
UNAUTHORIZED = "unauthorized: this server needs an API key, sent as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
REGISTRY_UNAUTHORIZED = "authentication required: this registry needs an API key, as the password (any user name) or as 'Authorization: Bearer <key>'"


def is_registry(path: str) -> bool:
    """A path of the registry API (``/v2``, ``/v2/...``), where OCI clients log in."""
    path = "/" + path.lstrip("/")
    return path == "/v2" or path.startswith("/v2/")


def challenge(path: str) -> str:
    """The ``WWW-Authenticate`` value of a 401 for ``path``."""
    return REGISTRY_CHALLENGE if is_registry(path) else CHALLENGE


class ApiKeyConfigError(OllamaError):
    """The keys cannot be read: the server must not start without them."""


def _digests(keys) -> tuple[bytes, ...]:
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


def file_keys(path: Path) -> tuple[bytes, ...]:
    """The SHA-256 of every key in the key file; ``ApiKeyConfigError`` when it cannot be read or
    holds none."""
    try:
        keys = read_key_file(path)
    except (OSError, ValueError) as exc:
        raise ApiKeyConfigError(f"cannot read the API key file {path}: {exc}") from None
    if not keys:
        raise ApiKeyConfigError(f"the API key file {path} holds no key")
    return _digests(keys)


def load_keys(settings) -> tuple[bytes, ...]:
    """The SHA-256 of every accepted key (``OLLAMAKIT_API_KEYS`` and the key file)."""
    keys = _digests(settings.api_keys)
    if settings.api_keys_file is not None:
        keys += file_keys(settings.api_keys_file)
    return keys


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another: its inode (a file replaced by a rename),
    modification time and size; None when it cannot be seen."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def basic_password(credentials: str) -> str | None:
    """The password of HTTP Basic's ``base64(user:password)`` (RFC 7617); None when malformed.
    Returned as latin-1 text, as WSGI hands over header values, so ``accepts`` hashes the
    bytes the client encoded."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def presented_key(
    authorization: str | None, x_api_key: str | None, basic: bool = False
) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``, and
    with ``basic`` (the registry's routes) the password of ``Authorization: Basic``."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if basic and scheme.lower() == "basic" and value.strip():
        return basic_password(value)
    return (x_api_key or "").strip() or None


def refusal_body(path: str) -> dict:
    """Ollama's ``{"error": message}``; under ``/v1/`` the error object OpenAI's and Anthropic's
    clients both read their message from (the check runs before a route says which API it is);
    under ``/v2`` the registry API's error list, which OCI clients show."""
    if is_registry(path):
        return {"errors": [{"code": "UNAUTHORIZED", "message": REGISTRY_UNAUTHORIZED}]}
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

    RELOAD_SECONDS = 1.0  # how often, at most, the key file is looked at

    def __init__(self, settings):
        self.file = settings.api_keys_file
        self.stamp = _stamp(self.file) if self.file is not None else None
        self.digests = load_keys(settings)  # a file that cannot be read stops the start
        self.from_setting = _digests(settings.api_keys)
        # Once keys are asked for they stay asked for, whatever becomes of the file.
        self.enabled = bool(self.digests)
        self.open = {PROBE_PATHS[probe] for probe in settings.open_probes if probe in PROBE_PATHS}
        self._next_look = time.monotonic() + self.RELOAD_SECONDS
        self._lock = threading.Lock()

    def current(self) -> tuple[bytes, ...]:
        """The digests accepted now: the key file read again when it has changed."""
        if self.file is None or time.monotonic() < self._next_look:
            return self.digests
        with self._lock:
            now = time.monotonic()
            if now >= self._next_look:
                self._next_look = now + self.RELOAD_SECONDS
                stamp = _stamp(self.file)
                if stamp != self.stamp:
                    self.stamp = stamp
                    self.digests = self._reload()
        return self.digests

    def _reload(self) -> tuple[bytes, ...]:
        try:
            from_file = file_keys(self.file)
        except ApiKeyConfigError as exc:
            log.error(
                "%s; until it is fixed only the keys in OLLAMAKIT_API_KEYS (%d) are accepted",
                exc.message,
                len(self.from_setting),
            )
            return self.from_setting
        log.info("the API key file %s changed: %d keys in it", self.file, len(from_file))
        return self.from_setting + from_file

    def accepts(self, key: str | None) -> bool:
        """Compares against every key, in constant time for each: the answer's timing says
        neither which key nor how much of one matched."""
        if key is None:
            return False
        # WSGI hands header values over as latin-1 text: these are the bytes the client sent.
        presented = hashlib.sha256(key.encode("latin-1", "replace")).digest()
        matched = False
        for digest in self.current():
            matched |= hmac.compare_digest(presented, digest)
        return matched

    def allows(
        self, method: str, path: str, authorization: str | None, x_api_key: str | None
    ) -> bool:
        path = "/" + path.lstrip("/")
        if method in ("GET", "HEAD") and (path.rstrip("/") or "/") in self.open:
            return True
        return self.accepts(presented_key(authorization, x_api_key, basic=is_registry(path)))


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
        resp.set_header("WWW-Authenticate", challenge(req.path))
        resp.content_type = "application/json; charset=utf-8"
        resp.data = b"" if req.method == "HEAD" else json.dumps(refusal_body(req.path)).encode()
        resp.complete = True
