"""``ollamakit --version``: asks the running server for its version, as ``ollama -v`` does, and
warns when this client is a different version.

The server reports the Ollama API version it implements (``version``) and its own release
(``ollamakit``); both are shown and both are compared. The standard library's HTTP client is
used so that the root command imports nothing heavy.
"""

from __future__ import annotations

import json

import click

from .. import OLLAMA_VERSION, __version__
from ..config import client_api_key
from .address import server_url


def describe(version: str, own: str | None) -> str:
    return f"{version} (ollamakit {own})" if own else version


def server_version(timeout: float = 5.0) -> tuple[str, str | None] | None:
    """``(version, ollamakit_version)`` from ``/api/version``; None when no server answers."""
    import urllib.request  # imported here: building the command group stays cheap

    request = urllib.request.Request(server_url() + "/api/version")
    key = client_api_key()
    if key:  # a server with API keys answers nothing without one
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = json.loads(reply.read(64 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("version"), str):
        return None
    own = body.get("ollamakit")
    return body["version"], own if isinstance(own, str) else None


def version_lines(server: tuple[str, str | None] | None) -> list[str]:
    """What ``--version`` prints for the server's answer (None: no server)."""
    lines = []
    if server is None:
        lines.append("Warning: could not connect to a running Ollama instance")
    else:
        lines.append(f"ollama version is {describe(*server)}")
    if server != (OLLAMA_VERSION, __version__):
        lines.append(f"Warning: client version is {describe(OLLAMA_VERSION, __version__)}")
    return lines


def print_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo("\n".join(version_lines(server_version())))
    ctx.exit()
