"""The default context length, chosen from the compute backend's accelerator memory as Ollama
chooses it from its GPUs' (server/routes.go Serve: 256k at 47 GiB or more, 32k at 23 GiB or more,
else 4096; OLLAMA_GPU_OVERHEAD not counted; OLLAMA_CONTEXT_LENGTH wins). There is no GPU here,
so a backend that reports one stands in for it, through the same contract (``ComputeBackend.
accelerator_memory``, hook ``make_compute``) the cuda backend answers."""

from __future__ import annotations

import numpy
import pytest
from falcon.testing import TestClient

from ollamakit.config import GIB, Settings, default_context_length
from ollamakit.hookspecs import hookimpl
from ollamakit.interfaces import ComputeBackend
from ollamakit.kernel import make_kernel
from ollamakit.web import create_app
from ollamakit_scheduler.testing import FakeEngine, store_fake_model


class ReportedGpu(ComputeBackend):
    """A backend that says it computes in ``memory`` bytes of GPU memory."""

    name = "reported-gpu"

    def __init__(self, kernel, memory: int):
        super().__init__(kernel)
        self.memory = memory

    @property
    def xp(self):
        return numpy

    def accelerator_memory(self) -> int:
        return self.memory


class Reporting:
    def __init__(self, memory: int):
        self.memory = memory

    @hookimpl(tryfirst=True)
    def make_compute(self, kernel):
        return ReportedGpu(kernel, self.memory)


def kernel_with(memory: int, tmp_path, **settings):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    engine = FakeEngine()
    plugins = [engine, Reporting(memory)]
    return make_kernel(Settings(models_dir=models, **settings), plugins=plugins)


@pytest.mark.parametrize(
    ("memory", "overhead", "tokens"),
    [
        (0, 0, 4096),  # the CPU
        (16 * GIB, 0, 4096),
        (23 * GIB - 1, 0, 4096),
        (23 * GIB, 0, 32_768),  # a 24 GB card, reported a little under
        (40 * GIB, 0, 32_768),
        (47 * GIB, 0, 262_144),
        (80 * GIB, 0, 262_144),
        (24 * GIB, 2 * GIB, 4096),  # OLLAMA_GPU_OVERHEAD is not the model's
        (80 * GIB, 40 * GIB, 32_768),
        (1 * GIB, 2 * GIB, 4096),
    ],
)
def test_ollamas_tiers(memory, overhead, tokens, tmp_path):
    assert default_context_length(memory, overhead) == tokens
    kernel = kernel_with(memory, tmp_path, gpu_overhead=overhead)
    try:
        assert kernel.default_num_ctx == tokens
    finally:
        kernel.close()


def test_the_variable_wins(tmp_path):
    kernel = kernel_with(80 * GIB, tmp_path, context_length=8192)
    try:
        assert kernel.default_num_ctx == 8192
    finally:
        kernel.close()


def test_cpu_backends_keep_4096(tmp_path):
    for name in ("numpy", "ggml"):
        models = tmp_path / name
        models.mkdir()
        kernel = make_kernel(Settings(models_dir=models, compute=name))
        try:
            assert kernel.compute.accelerator_memory() == 0
            assert kernel.default_num_ctx == 4096
        finally:
            kernel.close()


def test_a_request_runs_with_the_chosen_context(tmp_path):
    """Through the scheduler: a request that sets no num_ctx gets the tier, within what the
    model was trained on; its own num_ctx, or its model's, still wins."""
    kernel = kernel_with(24 * GIB, tmp_path)
    try:
        store_fake_model(kernel, "long", "Q: one\nA: yes.\n", context_length=131_072)
        store_fake_model(kernel, "short", "Q: one\nA: yes.\n", context_length=2048)
        store_fake_model(kernel, "set", "Q: one\nA: yes.\n", params={"num_ctx": 1024})
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})

        def context(model, **options):
            body = {"model": model, "prompt": "Q: one", "stream": False, "options": options}
            assert client.simulate_post("/api/generate", json=body).status_code == 200
            running = client.simulate_get("/api/ps").json["models"]
            return next(m["context_length"] for m in running if m["name"] == f"{model}:latest")

        assert context("long") == 32_768
        assert context("short") == 2048  # the model's own training context
        assert context("set") == 1024
        assert context("long", num_ctx=4096) == 4096
    finally:
        kernel.close()
