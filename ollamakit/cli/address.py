"""Where the client commands find the server: ``OLLAMA_HOST``, as for ``ollama``."""

from __future__ import annotations

import ipaddress
import os

from ..config import parse_host


def _raw(value: str | None) -> str:
    return (os.environ.get("OLLAMA_HOST", "") if value is None else value).strip().strip("'\"")


def server_url(value: str | None = None) -> str:
    """The base URL for ``OLLAMA_HOST`` (``host``, ``host:port`` or ``scheme://host[:port]``)."""
    raw = _raw(value)
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else "http"
    host, port = parse_host(raw)
    if host in ("0.0.0.0", "::"):  # a listen-everywhere address: reach it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def ollama_host_url(value: str | None = None, connectable: bool = False) -> str:
    """The URL Ollama's ``envconfig.Host()`` makes of ``OLLAMA_HOST``: its scheme, host, port and
    path (``http://0.0.0.0:11434`` stays so). With ``connectable``, ``envconfig.ConnectableHost()``:
    an unspecified address (``0.0.0.0``, ``::``) becomes the loopback of its family. ``launch``
    hands each tool the one Ollama hands it."""
    raw = _raw(value)
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = ("https", "ollama.com:443") if raw == "ollama.com" else ("http", raw)
    path = rest.split("/", 1)[1] if "/" in rest else ""
    host, port = parse_host(raw if sep else rest)  # no scheme: port 11434 by default
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if connectable and address is not None and address.is_unspecified:
        host = "127.0.0.1" if address.version == 4 else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")
