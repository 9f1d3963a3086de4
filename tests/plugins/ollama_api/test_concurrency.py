"""Many clients through a real HTTP server: batching, the queue limit, and clients that leave."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import pytest

from ollamakit_scheduler.fixtures import SCRIPT, make_fake  # noqa: F401 (fixtures)
from ollamakit_scheduler.scheduler import QUEUE_FULL

QUESTIONS = ["one", "two", "three"]


def answer(question: str) -> str:
    prompt = f"Q: {question}\nA:"
    rest = SCRIPT[SCRIPT.index(prompt) + len(prompt) :]
    return rest[: rest.index("\n")]


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_eight_clients_get_their_own_answers(make_fake):
    setup = make_fake(num_parallel=4)
    setup.model(step_delay=0.002)
    with setup.server() as server:
        client = ollama.Client(host=server.url)

        def ask(i):
            question = QUESTIONS[i % 3]
            opts = {"temperature": 0, "stop": ["\n"]}
            if i % 2:
                reply = client.generate(model="fake", prompt=f"Q: {question}\nA:", options=opts)
                return question, reply.response
            parts = client.chat(
                model="fake",
                messages=[{"role": "user", "content": f"Q: {question}\nA:"}],
                options=opts,
                stream=True,
            )
            return question, "".join(p.message.content for p in parts)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(ask, range(8)))
    assert [text for _, text in results] == [answer(q) for q, _ in results]
    assert max(setup.runner.batch_sizes) > 1  # sequences really shared forward passes


def test_concurrent_streams_beat_one_after_another(make_fake):
    setup = make_fake(num_parallel=4)
    setup.model(step_delay=0.02)  # the cost of one forward pass, whatever its batch size
    body = {
        "model": "fake",
        "prompt": "Q: one\nA:",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 16},
    }
    with setup.server() as server, httpx.Client(base_url=server.url, timeout=60) as http:
        http.post("/api/generate", json={"model": "fake"})  # load first
        started = time.perf_counter()
        for _ in range(4):
            assert http.post("/api/generate", json=body).status_code == 200
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(lambda _: http.post("/api/generate", json=body).status_code, range(4))
            )
        concurrent = time.perf_counter() - started
    assert codes == [200] * 4
    assert concurrent < sequential / 2, (concurrent, sequential)


def test_queue_full_is_503(make_fake):
    setup = make_fake(num_parallel=1, max_queue=1)
    setup.model(step_delay=0.01, endless=True)
    body = {
        "model": "fake",
        "prompt": "Q: one\nA:",
        "options": {"temperature": 0, "num_predict": 100},
    }
    with setup.server() as server:
        with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as first:
            lines = first.iter_lines()  # kept: dropping it would close the connection
            next(lines)  # the first request holds the only slot
            waiting = threading.Thread(
                target=lambda: httpx.post(server.url + "/api/generate", json=body, timeout=60)
            )
            waiting.start()
            assert wait_until(lambda: setup.kernel.scheduler._pending == 1)
            refused = httpx.post(server.url + "/api/generate", json=body, timeout=60)
            assert refused.status_code == 503
            assert refused.json() == {"error": QUEUE_FULL}
        waiting.join(30)


@pytest.mark.parametrize("endpoint", ["/api/generate", "/api/chat"])
def test_a_client_that_leaves_frees_its_slot(make_fake, endpoint):
    setup = make_fake(num_parallel=1)
    setup.model(step_delay=0.005, endless=True)
    if endpoint == "/api/chat":
        body = {"model": "fake", "messages": [{"role": "user", "content": "Q: one\nA:"}]}
    else:
        body = {"model": "fake", "prompt": "Q: one\nA:"}
    body["options"] = {"temperature": 0, "num_predict": 100_000}
    with setup.server() as server:
        with httpx.stream("POST", server.url + endpoint, json=body, timeout=60) as response:
            lines = response.iter_lines()
            for _ in range(3):
                next(lines)
        # The generation stops: no more forward passes once the server notices.
        runner = setup.runner
        (entry,) = setup.kernel.scheduler._loaded.values()
        worker = entry.worker
        assert wait_until(
            lambda: not worker._waiting and not any(slot.sequence for slot in worker.slots)
        )
        calls = runner.forward_calls
        time.sleep(0.1)
        assert runner.forward_calls == calls
        # And the only slot serves the next client at once.
        quick = {**body, "stream": False, "options": {"temperature": 0, "num_predict": 3}}
        started = time.perf_counter()
        assert httpx.post(server.url + endpoint, json=quick, timeout=30).status_code == 200
        assert time.perf_counter() - started < 5
    assert runner.forward_calls < 1000
