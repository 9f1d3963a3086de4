"""Parallel requests by default: without ``OLLAMA_NUM_PARALLEL`` a model gets four slots when
its weights and four full caches fit in memory, else one; the slots' tokens share forward passes."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ollamakit.config import Settings
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)
from ollamakit_scheduler.scheduler import AUTO_PARALLEL

NUM_CTX = 256  # the tiny model's training context


def test_the_default_is_automatic_and_the_variable_still_rules(monkeypatch):
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL", raising=False)
    assert Settings.from_env().num_parallel == 0
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "2")
    assert Settings.from_env().num_parallel == 2
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "0")
    assert Settings.from_env().num_parallel == 0


@pytest.fixture
def tiny(client, kernel, tmp_path):
    data = tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert (
        client.simulate_post(
            "/api/create", json={"model": "tiny", "files": {"tiny.gguf": digest}}
        ).status_code
        == 200
    )
    model = kernel.store.get("tiny")

    def estimate(num_parallel):
        return kernel.hook.estimate_memory(
            kernel=kernel, model=model, num_ctx=NUM_CTX, num_parallel=num_parallel
        )

    def slots_after_load() -> int:
        body = {
            "model": "tiny",
            "prompt": "hi",
            "stream": False,
            "options": {"num_ctx": NUM_CTX, "num_predict": 1},
        }
        assert client.simulate_post("/api/generate", json=body).status_code == 200
        (entry,) = kernel.scheduler._loaded.values()
        assert len(entry.worker.slots) == entry.num_parallel
        return entry.num_parallel

    return estimate, slots_after_load


def test_a_model_that_fits_four_times_gets_four_slots(tiny):
    estimate, slots_after_load = tiny
    assert slots_after_load() == AUTO_PARALLEL == 4


def test_a_model_that_fits_only_once_gets_one_slot(tiny, kernel):
    estimate, slots_after_load = tiny
    one, four = estimate(1), estimate(4)
    assert one < four
    kernel.scheduler.memory_budget = (one + four) // 2
    assert slots_after_load() == 1


def test_memory_held_by_a_model_in_use_counts_against_four(tiny, kernel):
    estimate, slots_after_load = tiny
    one, four = estimate(1), estimate(4)
    kernel.scheduler.memory_budget = four + 1
    scheduler, model = kernel.scheduler, kernel.store.get("tiny")
    choices = scheduler._parallel_choices(model, scheduler_options(kernel))
    assert scheduler._parallel_for(choices) == (4, four)
    busy = model_in_use(scheduler, memory=four - one)  # an unrelated model, in use
    try:
        assert scheduler._parallel_for(choices) == (1, one)
    finally:
        scheduler._loaded.pop(busy.key)


def scheduler_options(kernel):
    from ollamakit.options import merged

    return merged({}, {"num_ctx": NUM_CTX})


def model_in_use(scheduler, memory):
    from ollamakit_scheduler.scheduler import LoadedModel, LoadKey

    entry = LoadedModel(LoadKey(("other",), ()), None, None, memory, refs=1)
    scheduler._loaded[entry.key] = entry
    return entry


def test_the_variable_overrides_the_choice(make_fake):
    setup = make_fake(num_parallel=2)
    setup.model()
    assert setup.client.simulate_post("/api/generate", json={"model": "fake"}).status_code == 200
    (entry,) = setup.kernel.scheduler._loaded.values()
    assert entry.num_parallel == 2


def test_concurrent_clients_share_forward_passes_by_default(make_fake):
    setup = make_fake()  # no num_parallel: automatic
    setup.model(step_delay=0.02)
    body = {
        "model": "fake",
        "prompt": "Q: one\nA:",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 16},
    }
    with setup.server() as server, httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/api/generate", json={"model": "fake"}).status_code == 200  # load first
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(lambda _: http.post("/api/generate", json=body).status_code, range(4))
            )
    assert codes == [200] * 4
    assert max(setup.runner.batch_sizes) == 4
