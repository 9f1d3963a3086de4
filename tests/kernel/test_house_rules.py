"""The house rules cover every plugin: each folder in plugins/ is named in pyproject.toml's
import-linter settings, so the contracts that keep plugins apart apply to it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


def importlinter() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def contract(name: str) -> dict:
    [found] = [c for c in importlinter()["contracts"] if c["name"] == name]
    return found


PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())


def test_there_are_plugins():
    assert {"ollamakit_ollama_api", "ollamakit_engine", "ollamakit_fsstore"} <= set(PLUGINS)


def test_every_plugin_is_a_root_package():
    assert sorted(importlinter()["root_packages"]) == ["ollamakit", *PLUGINS]


def test_the_kernel_may_import_no_plugin():
    assert contract("The kernel and its libraries import no plugin")["source_modules"] == [
        "ollamakit"
    ]
    assert (
        sorted(contract("The kernel and its libraries import no plugin")["forbidden_modules"])
        == PLUGINS
    )


def test_every_plugin_is_independent_of_the_others():
    assert sorted(contract("Plugins import no other plugin")["modules"]) == PLUGINS
