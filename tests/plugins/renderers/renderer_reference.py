"""Ollama's renderer and parser test tables (tests/reference/renderers), as parametrize lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "reference" / "renderers"


def cases(file: str, table: str, id_key: str | None = None) -> list:
    """The cases of one table, each a ``pytest.param`` named after its description."""
    data = json.loads((FOLDER / file).read_text())["tables"][table]["cases"]
    params = []
    for n, case in enumerate(data):
        if isinstance(case, list):  # a positional Go literal: its first field names it
            label = case[0] if case and isinstance(case[0], str) else None
        else:
            label = next(
                (case[k] for k in (id_key, "name", "desc") if k and isinstance(case.get(k), str)),
                None,
            )
        params.append(pytest.param(case, id=f"{n}-{label}" if label else str(n)))
    return params


def go_len(text: str) -> int:
    """A length as Go counts it: UTF-8 bytes."""
    return len(text.encode())


def think_of(value):
    """A Go ``*api.ThinkValue`` as the request's ``think``: its value, or None."""
    return value.get("value") if isinstance(value, dict) else value
