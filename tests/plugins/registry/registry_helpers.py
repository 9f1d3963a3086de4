"""Helpers shared by the registry tests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from falcon.testing import TestClient

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit.web import create_app
from ollamakit_registry.testing import registry_binary


def ndjson(result) -> list[dict]:
    return [json.loads(line) for line in result.text.splitlines() if line.strip()]


def statuses(events: list[dict]) -> list[str]:
    """Each status once, in order of first appearance (progress repeats collapse)."""
    seen = []
    for event in events:
        status = event.get("status") or f"error: {event.get('error')}"
        if status not in seen:
            seen.append(status)
    return seen


class Instance:
    """One ollamakit: a kernel on its own model folder, and a test client of its full app."""

    def __init__(self, models: Path, noprune: bool = False):
        self.models = models
        self.kernel = make_kernel(Settings(models_dir=models, noprune=noprune))
        self.client = TestClient(create_app(self.kernel), headers={"Host": "localhost"})

    def post(self, path: str, body: dict) -> list[dict]:
        result = self.client.simulate_post(path, json=body)
        assert result.status_code == 200, result.text
        return ndjson(result)

    def pull(self, name: str, **extra) -> list[dict]:
        return self.post("/api/pull", {"model": name, "insecure": True, **extra})

    def push(self, name: str, **extra) -> list[dict]:
        return self.post("/api/push", {"model": name, "insecure": True, **extra})

    def blobs(self) -> set[str]:
        return set(self.kernel.storage.list_blobs())

    def manifests(self) -> dict:
        return {
            parts: self.kernel.storage.read_manifest(parts)
            for parts, _ in self.kernel.storage.list_manifests()
        }

    def close(self) -> None:
        self.kernel.close()


def create_smol(inst: Instance, name: str, gguf: Path) -> None:
    """The real SmolLM2 GGUF, uploaded and created through the API."""
    data = gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    result = inst.client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert result.status_code in (200, 201), result.text
    events = inst.post(
        "/api/create", {"model": name, "files": {"model.gguf": digest}, "system": "You are terse."}
    )
    assert events[-1] == {"status": "success"}, events


def requires_registry() -> None:
    if registry_binary() is None:
        message = (
            "docker-registry is not installed (scripts/test.sh installs Debian's docker-registry)"
        )
        if os.environ.get("CI"):
            pytest.fail(
                message
            )  # CI runs scripts/test.sh as root: a missing registry is a set-up bug
        pytest.skip(message)


def tiny_model(inst: Instance, name: str, layer: bytes) -> mf.Manifest:
    """A model whose weights are ``layer`` (any bytes: the registry never parses them)."""
    store = inst.kernel.store
    digest, size = store.add_bytes(layer)
    config, config_size = store.add_bytes(
        b'{"model_format":"gguf","architecture":"amd64","os":"linux"}'
    )
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config, config_size), [mf.Layer(mf.MODEL, digest, size)]
    )
    store.write_manifest(ModelName.parse(name), manifest)
    return manifest
