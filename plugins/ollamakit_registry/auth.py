"""Answering a registry's ``WWW-Authenticate`` challenge.

Three ways, picked per challenge:

* ``Basic``: the configured username and password, sent to the registry itself.
* ``Bearer`` with configured credentials: exchanged for a token at the realm (Docker's flow).
* ``Bearer`` without them: Ollama's key-signed token request when the realm is on the registry's
  own host and an ed25519 key exists (``~/.ollama/id_ed25519``), else an anonymous token request.

Whatever comes back is only ever attached to requests for the registry's own host.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from ollamakit.errors import OllamaError

from .credentials import Credentials, credentials_for
from .wire import read_bounded

MAX_TOKEN_REPLY = 64 * 1024
OLLAMA_HOSTS = ("registry.ollama.ai", "ollama.com")
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class Unauthorized(OllamaError):
    status = 401


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), params


# -- Ollama's key-signed scheme ----------------------------------------------------------------


def key_path() -> Path:
    return Path.home() / ".ollama" / "id_ed25519"


def ensure_key(path: Path | None = None):
    """Load the ed25519 key (OpenSSH format), creating the pair as ``ollama serve`` would."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = path or key_path()
    if path.exists():
        data = path.read_bytes()[: 64 * 1024]
        try:
            return serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise OllamaError(f"cannot load key {path}: {exc}") from None
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data, mode in (
        (path, private, 0o600),
        (path.with_suffix(".pub"), public + b"\n", 0o644),
    ):
        temp = target.with_name(target.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temp, target)
    return key


def sign(key, data: bytes) -> str:
    """``<base64 SSH public key>:<base64 signature>``, the Authorization value Ollama sends."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.split(b" ")[1].decode() + ":" + base64.b64encode(key.sign(data)).decode()


# -- the authenticator -------------------------------------------------------------------------


class Authenticator:
    """Holds the Authorization value for one registry host and renews it on a challenge."""

    def __init__(self, client: httpx.Client, base_url: str):
        self.client = client
        parts = urlsplit(base_url)
        self.scheme, self.host = parts.scheme, parts.netloc.lower()
        self.credentials: Credentials | None = credentials_for(self.host)
        self.value: str | None = None
        if self.credentials and self.credentials.token:
            self.value = "Bearer " + self.credentials.token

    def headers_for(self, url: str) -> dict[str, str]:
        """The Authorization header, only for the registry's own scheme and host."""
        parts = urlsplit(url)
        if self.value and parts.netloc.lower() == self.host and parts.scheme == self.scheme:
            return {"Authorization": self.value}
        return {}

    def answer(self, challenge: str | None) -> None:
        if not challenge:
            raise Unauthorized(
                "unauthorized: registry sent 401 without a WWW-Authenticate challenge"
            )
        scheme, params = parse_challenge(challenge)
        creds = self.credentials
        if scheme == "basic":
            if not creds or not creds.has_password:
                if params.get("realm") == "ollamakit":  # another ollamakit, with API keys
                    raise Unauthorized(
                        f"unauthorized: {self.host} wants an API key; give it as the token for that host in {_doc()}"
                    )
                raise Unauthorized(
                    f"unauthorized: {self.host} wants a username and password; see {_doc()}"
                )
            self.value = _basic(creds)
        elif scheme == "bearer":
            self.value = "Bearer " + self._fetch_token(params)
        else:
            raise Unauthorized(f"unauthorized: unsupported authentication scheme {scheme!r}")

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if (
            realm and "://" not in realm
        ):  # a plain realm, no token service: another ollamakit's API key
            raise Unauthorized(
                f"unauthorized: {self.host} wants an API key; give it as the token for that host in {_doc()}"
            )
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Unauthorized(f"unauthorized: invalid token realm {realm[:200]!r}")
        if parts.scheme == "http" and self.scheme == "https":
            raise Unauthorized("insecure protocol http")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in params.get("scope", "").split(" ") if s]
        creds, headers = self.credentials, {}
        same_host = parts.netloc.lower() == self.host
        if creds and creds.has_password:
            headers["Authorization"] = _basic(creds)
        elif same_host and (key_path().exists() or self.host in OLLAMA_HOSTS):
            query += [
                ("ts", str(int(time.time()))),
                ("nonce", base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()),
            ]
            url = realm + ("&" if "?" in realm else "?") + urlencode(query)
            empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
            headers["Authorization"] = sign(ensure_key(), f"GET,{url},{empty}".encode())
            return self._get_token(url, headers)
        elif self.host in OLLAMA_HOSTS:
            raise Unauthorized(
                f'realm host "{parts.netloc}" does not match original host "{self.host}"'
            )
        url = realm + (("&" if "?" in realm else "?") + urlencode(query) if query else "")
        return self._get_token(url, headers)

    def _get_token(self, url: str, headers: dict) -> str:
        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                body = read_bounded(resp, MAX_TOKEN_REPLY, "token reply")
        except httpx.HTTPError as exc:
            raise OllamaError(f"token request failed: {exc}") from None
        if resp.status_code in (401, 403):
            raise Unauthorized("unauthorized: access denied")
        if resp.status_code != 200:
            raise OllamaError(
                f"token request failed: {resp.status_code}: {body[:200].decode('utf-8', 'replace')}"
            )
        try:
            reply = json.loads(body)
            token = reply.get("token") or reply.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise OllamaError("token request failed: the reply has no token")
        return token


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _doc() -> str:
    return "OLLAMAKIT_REGISTRY_AUTH or ~/.ollamakit/registries.json"
