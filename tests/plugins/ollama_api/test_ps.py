"""/api/ps and the scheduler's lifecycle: keep_alive, expiry, eviction."""

from __future__ import annotations

import time
from datetime import datetime

import ollama

from ollamakit_scheduler.fixtures import fake, make_fake  # noqa: F401 (fixtures)


def load(setup, model="fake", **body):
    result = setup.client.simulate_post("/api/generate", json={"model": model, **body})
    assert result.status_code == 200, result.text
    return result.json


def ps(setup):
    return setup.client.simulate_get("/api/ps").json["models"]


def expires_in(entry) -> float:
    return (
        datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
        - datetime.now().astimezone()
    ).total_seconds()


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_empty_is_a_list(fake):
    assert fake.client.simulate_get("/api/ps").json == {"models": []}


def test_entry_fields_through_the_official_client(fake):
    load(fake, options={"num_ctx": 100})
    with fake.server() as server:
        models = ollama.Client(host=server.url).ps().models
    assert len(models) == 1
    entry = models[0]
    assert entry.model == "fake:latest" and entry.size == 1 << 20 and entry.size_vram == 0
    assert len(entry.digest) == 64 and entry.context_length == 100
    assert entry.details.family == "fake" and entry.details.format == "gguf"
    raw = ps(fake)[0]
    assert set(raw) >= {
        "name",
        "model",
        "size",
        "size_vram",
        "digest",
        "details",
        "expires_at",
        "context_length",
    }
    assert raw["name"] == raw["model"] == "fake:latest"


def test_default_context_is_clamped_to_the_training_context(make_fake):
    setup = make_fake(context_length=4096)
    setup.model(context_length=512)
    load(setup)
    assert ps(setup)[0]["context_length"] == 512


def test_keep_alive_values(fake):
    load(fake)
    assert 290 < expires_in(ps(fake)[0]) <= 300  # the server default, 5m
    load(fake, keep_alive="10m")
    assert 590 < expires_in(ps(fake)[0]) <= 600
    load(fake, keep_alive=90)
    assert 85 < expires_in(ps(fake)[0]) <= 90
    load(fake, keep_alive=-1)
    assert expires_in(ps(fake)[0]) > 200 * 365 * 24 * 3600


def test_idle_model_expires(fake):
    load(fake, keep_alive=0.3)
    assert len(ps(fake)) == 1
    assert wait_until(lambda: ps(fake) == [])
    assert wait_until(lambda: fake.runner.closed)


def test_sorted_by_expiry_latest_first(make_fake):
    setup = make_fake()
    for name in ("a", "b", "c"):
        setup.model(name)
    load(setup, "a", keep_alive="1m")
    load(setup, "b", keep_alive="1h")
    load(setup, "c", keep_alive="5m")
    assert [m["name"] for m in ps(setup)] == ["b:latest", "c:latest", "a:latest"]


def test_max_loaded_models_evicts_least_recently_used(make_fake):
    setup = make_fake(max_loaded_models=2)
    for name in ("a", "b", "c"):
        setup.model(name)
    load(setup, "a")
    load(setup, "b")
    load(setup, "a")  # a is now the most recently used
    load(setup, "c")
    assert sorted(m["name"] for m in ps(setup)) == ["a:latest", "c:latest"]


def test_memory_budget_evicts(make_fake):
    setup = make_fake()
    setup.model("a", memory_bytes=600)
    setup.model("b", memory_bytes=600)
    setup.kernel.scheduler.memory_budget = 1000
    load(setup, "a")
    load(setup, "b")
    assert [m["name"] for m in ps(setup)] == ["b:latest"]


def test_a_model_bigger_than_the_budget_is_refused(make_fake):
    setup = make_fake()
    setup.model("a")
    setup.kernel.scheduler.memory_budget = 10
    result = setup.client.simulate_post("/api/generate", json={"model": "a"})
    assert result.status_code == 500 and "requires more system memory" in result.json["error"]


def test_recreated_model_is_reloaded(make_fake):
    setup = make_fake()
    setup.model("m", "Q: x\nA: old\n")
    body = {"model": "m", "prompt": "Q: x\nA:", "stream": False, "options": {"temperature": 0}}
    assert setup.client.simulate_post("/api/generate", json=body).json["response"] == " old\n"
    setup.model("m", "Q: x\nA: new\n")
    assert setup.client.simulate_post("/api/generate", json=body).json["response"] == " new\n"
    assert len(setup.engine.runners) == 2


def test_load_failure_is_an_error_not_a_hang(make_fake):
    setup = make_fake()
    model = setup.model("broken")
    # A model layer no engine recognises.
    model_path = model.model_path
    model_path.chmod(0o644)
    model_path.write_bytes(b"not a model")
    result = setup.client.simulate_post("/api/generate", json={"model": "broken"})
    assert result.status_code == 500 and "error" in result.json
    assert ps(setup) == []
