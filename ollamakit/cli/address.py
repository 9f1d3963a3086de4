"""Where the client commands find the server: ``OLLAMA_HOST``, as for ``ollama``."""

from __future__ import annotations

import os

from ..config import parse_host


def server_url(value: str | None = None) -> str:
    """The base URL for ``OLLAMA_HOST`` (``host``, ``host:port`` or ``scheme://host[:port]``)."""
    raw = (os.environ.get("OLLAMA_HOST", "") if value is None else value).strip().strip("'\"")
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else "http"
    host, port = parse_host(raw)
    if host in ("0.0.0.0", "::"):  # a listen-everywhere address: reach it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
