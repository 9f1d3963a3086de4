"""Readiness and models loaded at start: ``GET /health`` is 503 while the ``OLLAMAKIT_PRELOAD``
models load and 200 once they have; they stay for ``OLLAMA_KEEP_ALIVE``."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import ollama
import pytest
from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.hookspecs import hookimpl
from ollamakit.kernel import make_kernel
from ollamakit.testing import models as real_models
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.web import create_app


def create_tiny(models, tmp_path, name: str = "tiny") -> None:
    """A tiny runnable model, created through the API into ``models``."""
    kernel = make_kernel(Settings(models_dir=models))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        data = tiny_llama(
            tmp_path / f"{name}.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
        ).read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code == 201
        result = client.simulate_post(
            "/api/create", json={"model": name, "files": {"m.gguf": digest}, "stream": False}
        )
        assert result.status_code == 200, result.text
    finally:
        kernel.close()


class LoadGate:
    """Holds every model load until ``open`` is set, then lets the engine load it."""

    def __init__(self):
        self.open = threading.Event()
        self.waiting = threading.Event()

    @hookimpl(tryfirst=True)
    def load_model(self, kernel, model, options):
        self.waiting.set()
        assert self.open.wait(30)
        return None


def wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_without_preload_it_is_ready(client):
    result = client.simulate_get("/health")
    assert (result.status_code, result.json) == (200, {"status": "ok"})
    assert client.simulate_head("/health").status_code == 200


def test_503_while_the_preload_loads_then_200(tmp_path):
    models = tmp_path / "models"
    create_tiny(models, tmp_path)
    kernel = make_kernel(Settings(models_dir=models, preload=("tiny",), keep_alive=3600.0))
    gate = LoadGate()
    kernel.pm.register(gate)
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        waiting = client.simulate_get("/health")
        assert (waiting.status_code, waiting.json) == (
            503,
            {"status": "loading", "models": {"tiny": {"status": "waiting"}}},
        )
        kernel.hook.on_startup(kernel=kernel)
        assert gate.waiting.wait(30)
        loading = client.simulate_get("/health")
        assert (loading.status_code, loading.json["models"]) == (
            503,
            {"tiny": {"status": "loading"}},
        )
        assert client.simulate_head("/health").status_code == 503
        gate.open.set()
        ready = wait_for(lambda: (r := client.simulate_get("/health")).status_code == 200 and r)
        assert ready.json == {"status": "ok", "models": {"tiny": {"status": "loaded"}}}
        # Loaded for OLLAMA_KEEP_ALIVE, as after any request that names no keep_alive.
        (loaded,) = client.simulate_get("/api/ps").json["models"]
        expires = datetime.fromisoformat(loaded["expires_at"])
        assert loaded["name"] == "tiny:latest"
        assert abs(expires - datetime.now(timezone.utc) - timedelta(hours=1)) < timedelta(minutes=1)
    finally:
        gate.open.set()
        kernel.hook.on_shutdown(kernel=kernel)
        kernel.close()


def test_a_preload_that_fails_keeps_the_server_unready(tmp_path):
    models = tmp_path / "models"
    create_tiny(models, tmp_path)
    kernel = make_kernel(Settings(models_dir=models, preload=("tiny", "absent")))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        kernel.hook.on_startup(kernel=kernel)
        failed = wait_for(
            lambda: (r := client.simulate_get("/health")).json["status"] == "failed" and r
        )
        assert failed.status_code == 503
        assert failed.json["models"]["tiny"] == {"status": "loaded"}
        assert failed.json["models"]["absent"]["status"] == "failed"
        assert "not found" in failed.json["models"]["absent"]["error"]
    finally:
        kernel.close()


def test_preloaded_at_start_over_http_and_kept_forever(tmp_path):
    models = tmp_path / "models"
    create_tiny(models, tmp_path)
    server = ServerProcess(models, {"OLLAMAKIT_PRELOAD": "tiny", "OLLAMA_KEEP_ALIVE": "-1"}).start()
    try:
        import httpx

        with httpx.Client(base_url=server.url) as http:
            first = http.get("/health")
            assert first.status_code in (200, 503) and json.loads(first.text)["models"]["tiny"]
            wait_for(lambda: http.get("/health").status_code == 200)
        (loaded,) = ollama.Client(host=server.url).ps().models
        assert loaded.model == "tiny:latest"
        assert loaded.expires_at.year > 2200  # a negative OLLAMA_KEEP_ALIVE: never unloaded
    finally:
        server.stop()


@pytest.mark.real_model
def test_a_model_that_only_embeds_is_preloaded_to_embed(tmp_path):
    """all-MiniLM cannot generate: the preload loads it the way an embed request would."""
    models = tmp_path / "models"
    kernel = make_kernel(Settings(models_dir=models))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        folder = real_models.all_minilm_l6_v2()
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
            files[str(path.relative_to(folder))] = digest
        assert (
            client.simulate_post(
                "/api/create", json={"model": "minilm", "files": files, "stream": False}
            ).status_code
            == 200
        )
    finally:
        kernel.close()
    kernel = make_kernel(Settings(models_dir=models, preload=("minilm",)))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        kernel.hook.on_startup(kernel=kernel)
        ready = wait_for(
            lambda: (r := client.simulate_get("/health")).json["status"] != "loading" and r
        )
        assert (ready.status_code, ready.json["models"]) == (200, {"minilm": {"status": "loaded"}})
        assert [m["name"] for m in client.simulate_get("/api/ps").json["models"]] == [
            "minilm:latest"
        ]
    finally:
        kernel.close()
