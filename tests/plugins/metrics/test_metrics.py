"""``GET /metrics`` on a real server: real requests, then a scrape read by prometheus-client's
own parser, each count moved by exactly what the requests' replies say they did."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from falcon.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ollamakit.config import Settings
from ollamakit.hookspecs import hookimpl
from ollamakit.kernel import make_kernel
from ollamakit.testing.encoders import tiny_nomic_bert
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.web import create_app

TINY = "tiny:latest"
NOMIC = "nomic:latest"


def _create(client: httpx.Client, name: str, path) -> None:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    reply = client.post(
        "/api/create", json={"model": name, "files": {path.name: digest}, "stream": False}
    )
    assert reply.status_code == 200, reply.text


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One model loaded at a time, so that loading one evicts the other."""
    root = tmp_path_factory.mktemp("metrics")
    (root / "models").mkdir()
    tiny = tiny_llama(
        root / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64, endless=True
    )
    proc = ServerProcess(root / "models", {"OLLAMA_MAX_LOADED_MODELS": "1"}).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=120) as client:
            _create(client, "tiny", tiny)
            _create(client, "nomic", tiny_nomic_bert(root / "nomic.gguf"))
        yield proc
    finally:
        proc.stop()


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_counts_move_by_what_the_requests_did(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        before = scrape(client)
        for _ in range(3):
            assert client.get("/api/tags").status_code == 200
        assert client.post("/api/show", json={"model": "absent"}).status_code == 404
        assert client.get("/no/such/path").status_code == 404
        options = {"temperature": 0, "num_predict": 5}
        replies = [
            client.post(
                "/api/generate",
                json={"model": "tiny", "prompt": prompt, "stream": False, "options": options},
            ).json()
            for prompt in ("Hello", "Why is the sky blue?")
        ]
        chat = client.post(
            "/api/chat",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "Hi there"}],
                "stream": False,
                "options": options,
            },
        )
        assert chat.status_code == 200
        replies.append(chat.json())
        embedded = client.post("/api/embed", json={"model": "nomic", "input": ["a b", "c"]}).json()
        # The embed evicted tiny; the chat below loads it again and evicts nomic.
        assert client.post(
            "/api/chat",
            json={"model": "tiny", "messages": [], "stream": False},
        ).json()["done_reason"] == ("load")
        (loaded,) = client.get("/api/ps").json()["models"]
        after = scrape(client)

    requests = "ollamakit_http_requests_total"
    assert moved(before, after, requests, method="GET", route="/api/tags", status="200") == 3
    assert moved(before, after, requests, method="POST", route="/api/show", status="404") == 1
    assert moved(before, after, requests, method="GET", route="", status="404") == 1
    assert moved(before, after, requests, method="POST", route="/api/generate", status="200") == 2
    assert moved(before, after, requests, method="POST", route="/api/chat", status="200") == 2
    assert (
        moved(before, after, "ollamakit_http_request_duration_seconds_count", route="/api/tags")
        == 3
    )

    prompt = sum(r["prompt_eval_count"] for r in replies)
    generated = sum(r["eval_count"] for r in replies)
    assert generated == 15  # endless: every answer runs to num_predict
    assert moved(before, after, "ollamakit_prompt_tokens_total", model=TINY) == prompt
    assert moved(before, after, "ollamakit_generated_tokens_total", model=TINY) == generated
    assert (
        moved(before, after, "ollamakit_prompt_tokens_total", model=NOMIC)
        == embedded["prompt_eval_count"]
    )
    assert moved(before, after, "ollamakit_generated_tokens_total", model=NOMIC) == 0
    kinds = "ollamakit_inference_requests_total"
    assert moved(before, after, kinds, model=TINY, kind="generate") == 2
    assert moved(before, after, kinds, model=TINY, kind="chat") == 1
    assert moved(before, after, kinds, model=NOMIC, kind="embed") == 1

    first = "ollamakit_time_to_first_token_seconds"
    assert moved(before, after, f"{first}_count", model=TINY) == 3
    longest = max(r["total_duration"] for r in replies) / 1e9
    assert 0 < moved(before, after, f"{first}_sum", model=TINY) <= 3 * longest
    rate = "ollamakit_generation_tokens_per_second"
    assert moved(before, after, f"{rate}_count", model=TINY) == 3
    speeds = [r["eval_count"] / (r["eval_duration"] / 1e9) for r in replies]
    assert moved(before, after, f"{rate}_sum", model=TINY) == pytest.approx(sum(speeds), rel=1e-6)
    # every speed falls in a bucket at or under the largest: +Inf counts them all
    assert moved(before, after, f"{rate}_bucket", model=TINY, le="+Inf") == 3

    loads = "ollamakit_model_load_duration_seconds_count"
    assert moved(before, after, loads, model=TINY) == 2  # at first, and again after nomic
    assert moved(before, after, loads, model=NOMIC) == 1
    unloads = "ollamakit_model_unloads_total"
    assert moved(before, after, unloads, model=TINY, reason="evicted") == 1
    assert moved(before, after, unloads, model=NOMIC, reason="evicted") == 1

    assert value(after, "ollamakit_loaded_models") == 1
    assert value(after, "ollamakit_queue_depth") == 0
    assert value(after, "ollamakit_model_memory_bytes", model=TINY) == loaded["size"] > 0
    assert value(after, "ollamakit_model_memory_bytes", model=NOMIC) == 0  # gone


def test_an_unload_is_counted_with_its_reason(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert (
            client.post("/api/generate", json={"model": "tiny", "stream": False}).status_code == 200
        )
        before = scrape(client)
        reply = client.post("/api/generate", json={"model": "tiny", "keep_alive": 0}).json()
        assert reply["done_reason"] == "unload"
        reason = {"model": TINY, "reason": "requested"}
        wait_for(lambda: moved(before, scrape(client), "ollamakit_model_unloads_total", **reason))
        after = scrape(client)
        assert moved(before, after, "ollamakit_model_unloads_total", **reason) == 1
        assert value(after, "ollamakit_loaded_models") == 0


class Waiting:
    """Holds a model's load until ``go`` is set, so a request stays in the queue."""

    def __init__(self):
        import threading

        self.go, self.waiting = threading.Event(), threading.Event()

    @hookimpl(tryfirst=True)
    def load_model(self, kernel, model, options):
        self.waiting.set()
        assert self.go.wait(30)


def test_the_queue_depth_counts_waiting_requests(tmp_path):
    """A request waiting for its model's load is in the queue; each app has its own registry."""
    import threading

    kernel = make_kernel(Settings(models_dir=tmp_path / "models"))
    other = make_kernel(Settings(models_dir=tmp_path / "other"))
    gate = Waiting()
    kernel.pm.register(gate)
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        second = TestClient(create_app(other), headers={"Host": "localhost"})
        data = tiny_llama(
            tmp_path / "t.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
        ).read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        client.simulate_post(f"/api/blobs/{digest}", body=data)
        created = client.simulate_post(
            "/api/create", json={"model": "t", "files": {"t.gguf": digest}, "stream": False}
        )
        assert created.status_code == 200
        thread = threading.Thread(
            target=client.simulate_post, args=("/api/generate",), kwargs={"json": {"model": "t"}}
        )
        thread.start()
        assert gate.waiting.wait(30)
        text = client.simulate_get("/metrics").text
        assert "ollamakit_queue_depth 1.0" in text.splitlines()
        gate.go.set()
        thread.join(30)
        text = client.simulate_get("/metrics").text
        assert "ollamakit_queue_depth 0.0" in text.splitlines()
        # the other app counted none of it
        own = second.simulate_get("/metrics").text
        assert 'route="/api/create"' in text and 'route="/api/create"' not in own
    finally:
        gate.go.set()
        kernel.close()
        other.close()


def test_head_answers_as_get_without_the_body(server):
    """Probes and load balancers ask with HEAD; prometheus-client's own app answers it as GET."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        got = client.get("/metrics")
        head = client.head("/metrics")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-type"].startswith("text/plain; version=")
        # the length of the body a GET would have had (the counts move between the two)
        assert abs(int(head.headers["content-length"]) - len(got.content)) < 2048
        samples = scrape(client)
    counted = {"method": "HEAD", "route": "/metrics", "status": "200"}
    assert value(samples, "ollamakit_http_requests_total", **counted) >= 1


def test_off_by_setting(tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path, metrics=False))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        assert client.simulate_get("/metrics").status_code == 404
        assert client.simulate_get("/api/tags").status_code == 200
    finally:
        kernel.close()


def test_off_by_environment(monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_METRICS", "0")
    assert Settings.from_env().metrics is False
    monkeypatch.setenv("OLLAMAKIT_METRICS", "1")
    assert Settings.from_env().metrics is True
    monkeypatch.delenv("OLLAMAKIT_METRICS")
    assert Settings.from_env().metrics is True


def test_api_keys_cover_metrics_and_refusals_are_counted(tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path, api_keys=("the-key",)))
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        refused = client.simulate_get("/metrics")
        assert refused.status_code == 401 and "ollamakit_" not in refused.text
        text = client.simulate_get("/metrics", headers={"x-api-key": "the-key"}).text
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        refusal = {"method": "GET", "route": "", "status": "401"}  # refused before routing
        assert value(samples, "ollamakit_http_requests_total", **refusal) == 1
    finally:
        kernel.close()


class Broken:
    """An observer that fails at every event."""

    @hookimpl
    def on_request_done(self, kernel, method, route, status, seconds):
        raise RuntimeError("observer bug")

    @hookimpl
    def on_inference_done(self, kernel, served):
        raise RuntimeError("observer bug")


def test_a_failing_observer_breaks_nothing(tmp_path, caplog):
    """The kernel logs an observer's exception; the request, and the other observers, go on."""
    kernel = make_kernel(Settings(models_dir=tmp_path))
    kernel.pm.register(Broken())
    try:
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        assert client.simulate_get("/api/tags").status_code == 200
        assert "an observer of on_request_done failed" in caplog.text
        counted = client.simulate_get("/metrics").text  # the metrics plugin still heard of it
        assert (
            'ollamakit_http_requests_total{method="GET",route="/api/tags",status="200"} 1.0'
            in counted
        )
    finally:
        kernel.close()
