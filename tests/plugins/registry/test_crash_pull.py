"""A server killed with SIGKILL in the middle of a pull from a real registry: the next start-up
leaves no temporary file of it, only the pull's resumable partial state (Ollama's layout); every
manifest is whole, every listed model answers, and pulling again finishes and leaves nothing."""

from __future__ import annotations

import hashlib
import signal
import time

import httpx
import pytest
from registry_helpers import Instance

from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.leftovers import (
    check_manifests,
    check_models_answer,
    dead_folders,
    stray_files,
)


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.002)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
def test_kill_during_a_pull(tmp_path, local_registry):
    source = Instance(tmp_path / "source")
    try:
        data = tiny_llama(
            tmp_path / "big.gguf", n_layers=2, n_embd=512, n_heads=8, n_kv_heads=2, n_ff=2048
        ).read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert source.client.simulate_post(f"/api/blobs/{digest}", body=data).status_code == 201
        name = f"{local_registry.host}/library/big:latest"
        assert source.post("/api/create", {"model": name, "files": {"m.gguf": digest}})[-1] == {
            "status": "success"
        }
        assert source.push(name)[-1] == {"status": "success"}
    finally:
        source.close()

    models = tmp_path / "models"
    models.mkdir()
    partial = models / "blobs" / f"sha256-{digest[7:]}-partial"
    server = ServerProcess(models).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            with http.stream("POST", "/api/pull", json={"model": name, "insecure": True}):
                wait_for(partial.exists)
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(10)
    finally:
        server.stop()
    assert not (models / "blobs" / f"sha256-{digest[7:]}").exists(), (
        "the pull finished before the kill"
    )

    server = ServerProcess(models).start()
    try:
        assert dead_folders(models) == [] and stray_files(models) == []
        check_manifests(models)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert check_models_answer(http) == []
            reply = http.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
            assert reply.status_code == 200 and reply.json() == {"status": "success"}, reply.text
            assert check_models_answer(http) == [name]
    finally:
        server.stop()
    assert stray_files(models) == [] and dead_folders(models) == []
    assert not list((models / "blobs").glob("*partial*"))
    check_manifests(models)
