"""Small HTTP helpers shared by the registry client, its authenticator and the transfers."""

from __future__ import annotations

import platform
import ssl
import sys
from functools import lru_cache

import httpx

from ollamakit import OLLAMA_VERSION, __version__
from ollamakit.errors import OllamaError

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(
    platform.machine().lower(), platform.machine().lower()
)
USER_AGENT = f"ollama/{OLLAMA_VERSION} ({_ARCH} {sys.platform}) Python/{platform.python_version()} ollamakit/{__version__}"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client (building one costs tens of milliseconds)."""
    return ssl.create_default_context()


def make_client() -> httpx.Client:
    """Redirects are followed by hand, so we decide where credentials go."""
    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        verify=tls_context(),
        headers={"User-Agent": USER_AGENT},
    )


def read_bounded(resp: httpx.Response, limit: int, what: str = "registry reply") -> bytes:
    """The decoded body, refusing to hold more than ``limit`` bytes of it."""
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise OllamaError(f"{what} is {length} bytes, more than the {limit} allowed")
    body = bytearray()
    for chunk in resp.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise OllamaError(f"{what} is larger than the {limit} bytes allowed")
    return bytes(body)


def body_text(resp: httpx.Response, limit: int = 512) -> str:
    """The start of an error reply, for messages (reads at most ``limit`` bytes)."""
    data = bytearray()
    try:
        for chunk in resp.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass
    return bytes(data[:limit]).decode("utf-8", "replace").strip()
