"""pytest fixtures over the fake engine (import them into a test module, or list this module
in ``pytest_plugins``): a kernel, an in-process test client, and a real HTTP server."""

from __future__ import annotations

from dataclasses import replace

import pytest
from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.web import create_app

from .testing import fake_kernel, serve_in_thread, store_fake_model

SCRIPT = (
    "Q: one\nA: the first answer.\n"
    "Q: two\nA: the second answer.\n"
    "Q: three\nA: caf\u00e9 \u4e2d\u6587 \U0001f600 done.\n"
)


class FakeSetup:
    """A kernel running fake models, with the client and server a test needs."""

    def __init__(self, settings: Settings):
        self.kernel, self.engine = fake_kernel(settings)
        self.client = TestClient(create_app(self.kernel), headers={"Host": "localhost"})

    def model(self, name: str = "fake", script: str = SCRIPT, **kwargs):
        return store_fake_model(self.kernel, name, script, **kwargs)

    def server(self, threads: int = 16):
        return serve_in_thread(self.kernel, threads)

    @property
    def runner(self):
        return self.engine.runners[-1]

    def close(self):
        self.kernel.close()


@pytest.fixture
def make_fake(tmp_path):
    """``make_fake(**settings)`` → a ``FakeSetup``; closed when the test ends."""
    made = []

    def make(**overrides) -> FakeSetup:
        models = tmp_path / f"models{len(made)}"
        models.mkdir()
        setup = FakeSetup(replace(Settings(models_dir=models), **overrides))
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.close()


@pytest.fixture
def fake(make_fake) -> FakeSetup:
    """Default settings with one stored fake model named ``fake``."""
    setup = make_fake()
    setup.model()
    return setup


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory):
    """A real ``ollamakit serve`` with SmolLM2-135M created through the API as ``smol`` and
    loaded; yields an ``ollama.Client`` for it. Skipped when no installed engine runs it."""
    import ollama

    from ollamakit.testing import models
    from ollamakit.testing.fixtures import ServerProcess

    path = models.smollm2_q4_1()
    models_dir = tmp_path_factory.mktemp("smollm2") / "models"
    models_dir.mkdir()
    server = ServerProcess(models_dir).start()
    try:
        client = ollama.Client(host=server.url, timeout=600)
        digest = client.create_blob(path)
        client.create(model="smol", files={"smol.gguf": digest})
        try:
            client.generate(model="smol", keep_alive=-1)
        except ollama.ResponseError as exc:
            if "no engine plugin can run" in str(exc):
                pytest.skip("no installed engine plugin runs llama models")
            raise
        yield client
    finally:
        server.stop()
