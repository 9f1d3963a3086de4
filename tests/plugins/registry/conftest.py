from __future__ import annotations

from pathlib import Path

import pytest
from registry_fakes import FakeRegistry
from registry_helpers import Instance, requires_registry

from ollamakit.testing import (
    models as real_models,
)  # imported now: its cache path uses the real HOME
from ollamakit_registry.testing import LocalRegistry


@pytest.fixture(autouse=True)
def isolated_credentials(tmp_path, monkeypatch):
    """No test sees the machine's registry credentials or signing key."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OLLAMAKIT_REGISTRY_AUTH", raising=False)
    monkeypatch.delenv("OLLAMAKIT_REGISTRIES_FILE", raising=False)


@pytest.fixture
def instance(tmp_path):
    made = []

    def make(label: str = "a", **kwargs) -> Instance:
        made.append(Instance(tmp_path / f"models-{label}", **kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    return real_models.smollm2_q4_1()


@pytest.fixture
def local_registry(tmp_path):
    requires_registry()
    with LocalRegistry(tmp_path / "registry") as registry:
        yield registry


@pytest.fixture
def fake_registry():
    registry = FakeRegistry().start()
    yield registry
    registry.stop()
