"""Servers for the OpenAI-compatibility tests: the fake engine (predictable text, tools) and,
where vectors or a real forward pass matter, a tiny generated llama model on the real engine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit_scheduler.fixtures import FakeSetup, fake, make_fake  # noqa: F401 (fixtures)
from ollamakit_scheduler.testing import FakeEngine


def engine_kernel(settings: Settings):
    """A kernel with every installed plugin (the real engine included) plus the fake engine."""
    return make_kernel(settings, plugins=[FakeEngine()])


class EngineSetup(FakeSetup):
    def __init__(self, settings: Settings):
        from falcon.testing import TestClient

        from ollamakit.web import create_app

        self.kernel = engine_kernel(settings)
        self.client = TestClient(create_app(self.kernel), headers={"Host": "localhost"})

    def create_from_gguf(self, name: str, path, **body):
        data = path.read_bytes()
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert self.client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (
            200,
            201,
        )
        result = self.client.simulate_post(
            "/api/create",
            json={"model": name, "files": {"m.gguf": digest}, "stream": False, **body},
        )
        assert result.status_code == 200, result.text


@pytest.fixture
def engine(tmp_path):
    """The fake model ``fake`` and a tiny random llama ``tiny`` (ChatML template)."""
    models = tmp_path / "models"
    models.mkdir()
    setup = EngineSetup(replace(Settings(models_dir=models), num_parallel=2))
    setup.model()
    path = tiny_llama(
        tmp_path / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
    )
    setup.create_from_gguf("tiny", path)
    yield setup
    setup.close()
