"""Registry credentials, per registry host, from the environment or a file.

Both sources hold the same JSON object, keyed by ``host[:port]`` (matched case-insensitively)::

    {
        "127.0.0.1:5000": {"username": "alice", "password": "s3cret"},
        "registry.example.com": {"token": "a bearer token"},
    }

* ``OLLAMAKIT_REGISTRY_AUTH``: the JSON text itself (entries here win).
* ``~/.ollamakit/registries.json``, or the file named by ``OLLAMAKIT_REGISTRIES_FILE``.

A ``token`` is sent as ``Authorization: Bearer`` to that host only. A username and password
answer a ``Basic`` challenge directly, or are exchanged for a token at a ``Bearer`` realm.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ollamakit.errors import BadRequest

ENV_AUTH = "OLLAMAKIT_REGISTRY_AUTH"
ENV_FILE = "OLLAMAKIT_REGISTRIES_FILE"
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    token: str = ""

    @property
    def has_password(self) -> bool:
        return bool(self.username)


def default_file() -> Path:
    return Path(os.environ.get(ENV_FILE) or Path.home() / ".ollamakit" / "registries.json")


def _parse(text: str, where: str) -> dict[str, Credentials]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"registry credentials in {where} are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"registry credentials in {where} must be a JSON object keyed by host")
    table = {}
    for host, entry in data.items():
        if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
            raise BadRequest(
                f"registry credentials for {host!r} in {where} must map names to strings"
            )
        table[host.lower()] = Credentials(
            entry.get("username", ""), entry.get("password", ""), entry.get("token", "")
        )
    return table


def load_credentials() -> dict[str, Credentials]:
    """Every configured host's credentials; the environment wins over the file."""
    table: dict[str, Credentials] = {}
    path = default_file()
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raw = None
    except OSError as exc:
        raise BadRequest(f"cannot read registry credentials {path}: {exc.strerror}") from None
    if raw is not None:
        if len(raw) > MAX_FILE_BYTES:
            raise BadRequest(
                f"registry credentials file {path} is larger than {MAX_FILE_BYTES} bytes"
            )
        table.update(_parse(raw.decode("utf-8", "replace"), str(path)))
    env = os.environ.get(ENV_AUTH)
    if env and env.strip():
        table.update(_parse(env, ENV_AUTH))
    return table


def credentials_for(host: str) -> Credentials | None:
    return load_credentials().get(host.lower())
