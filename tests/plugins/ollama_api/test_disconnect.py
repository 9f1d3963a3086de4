"""Abandoned work stops: a client that closes its connection, streaming or not, during the
prompt, the answer or an embedding batch, frees the model for the next request. Real sockets
against the server as ``ollamakit serve`` configures waitress, over the fake engine."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

STEP = 0.02  # seconds per forward pass of the fake model


@pytest.fixture
def running(make_fake):
    """A one-slot server whose model never stops talking, and costs STEP per forward pass."""
    setup = make_fake(num_parallel=1)
    setup.model(endless=True, step_delay=STEP)
    with setup.server() as server:
        yield setup, server


def walk_away(url: str, path: str, body: dict, started, timeout: float = 10.0) -> None:
    """Send ``body`` on a raw socket, wait until ``started()`` says the work is under way,
    then close the connection without reading the reply."""
    parts = urlsplit(url)
    raw = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    deadline = time.monotonic() + timeout
    while not started():
        assert time.monotonic() < deadline, "the work never started"
        time.sleep(0.01)
    time.sleep(0.2)
    sock.close()


def two_tokens(url: str) -> float:
    """Seconds a 2-token generate takes, from now."""
    began = time.monotonic()
    reply = httpx.post(
        f"{url}/api/generate",
        timeout=30,
        json={
            "model": "fake",
            "prompt": "Q: one\nA:",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 2},
        },
    )
    assert reply.status_code == 200 and reply.json()["eval_count"] == 2
    return time.monotonic() - began


def stops(count, within: float = 2.0, quiet: float = 0.5) -> bool:
    """Whether ``count()`` stops growing for ``quiet`` seconds before ``within`` seconds pass."""
    deadline = time.monotonic() + within
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def forwards(setup, at_least: int):
    return lambda: bool(setup.engine.runners) and setup.runner.forward_calls >= at_least


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/v1/chat/completions"])
def test_a_client_that_leaves_mid_answer_frees_the_slot(running, stream, path):
    setup, server = running
    text = "Q: one\nA:"
    body = {
        "model": "fake",
        "stream": stream,
        "options": {"temperature": 0, "num_predict": 100_000},
        "max_tokens": 100_000,
    }  # the /v1 route reads this one
    body.update(
        {"prompt": text}
        if path == "/api/generate"
        else {"messages": [{"role": "user", "content": text}]}
    )
    walk_away(server.url, path, body, forwards(setup, 5))
    assert stops(lambda: setup.runner.forward_calls)
    assert two_tokens(server.url) < 2.0


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_during_the_prompt_frees_the_slot(running, stream):
    setup, server = running
    # 4,000 prompt tokens fed 16 at a time: 250 forward passes, 5 s of work.
    body = {
        "model": "fake",
        "prompt": "x" * 4000,
        "raw": True,
        "stream": stream,
        "options": {"num_batch": 16, "num_ctx": 8192, "num_predict": 2},
    }
    walk_away(server.url, "/api/generate", body, forwards(setup, 3))
    assert stops(lambda: setup.runner.forward_calls)
    assert setup.runner.forward_calls < 200
    assert two_tokens(server.url) < 2.0


@pytest.mark.parametrize("path", ["/api/embed", "/v1/embeddings"])
def test_a_client_that_leaves_an_embedding_batch_frees_the_model(running, path):
    setup, server = running
    two_tokens(server.url)  # the model is loaded
    runner, embedded = setup.runner, []

    def slow_embed(batch):
        with runner._lock:  # the model computes one thing at a time, as a real engine does
            time.sleep(0.01 * len(batch))
            embedded.extend(batch)
        return [[1.0, 0.0]] * len(batch)

    runner.embed = slow_embed
    inputs = [f"input {n}" for n in range(1000)]  # 10 s of work
    walk_away(server.url, path, {"model": "fake", "input": inputs}, lambda: len(embedded) > 0)
    assert stops(lambda: len(embedded))
    assert len(embedded) < 500
    assert two_tokens(server.url) < 2.0


def test_a_client_that_stays_gets_its_answer(running):
    setup, server = running
    reply = httpx.post(
        f"{server.url}/api/generate",
        timeout=30,
        json={
            "model": "fake",
            "prompt": "Q: one\nA:",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 40},
        },
    )
    assert (
        reply.status_code == 200 and reply.json()["eval_count"] == 40
    )  # 0.8 s of polling did not cut it


def leave_queued(url: str, path: str, body: dict, queued, clients: int = 8) -> None:
    """``clients`` requests that wait (``queued()`` says when all do), then leave together."""
    parts = urlsplit(url)
    raw = json.dumps(body).encode()
    socks = []
    for _ in range(clients):
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        socks.append(sock)
    deadline = time.monotonic() + 10
    while not queued():
        assert time.monotonic() < deadline, "the requests never queued"
        time.sleep(0.01)
    time.sleep(0.2)
    for sock in socks:
        sock.close()


def long_prompt(path: str) -> dict:
    """A request that, once it had a slot, would hold it for 5 s (250 forward passes)."""
    body = {
        "model": "fake",
        "stream": False,
        "options": {"num_batch": 16, "num_ctx": 8192, "num_predict": 2},
    }
    text = "x" * 4000
    body.update(
        {"prompt": text, "raw": True}
        if path == "/api/generate"
        else {"messages": [{"role": "user", "content": text}]}
    )
    return body


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_clients_that_leave_while_waiting_for_a_slot_never_take_one(running, path):
    setup, server = running
    scheduler = setup.kernel.scheduler
    # One client holds the only slot, talking without end, while eight more queue behind it
    # (with its num_batch: another would load a copy of its own instead of waiting).
    holder = socket.create_connection((urlsplit(server.url).hostname, urlsplit(server.url).port))
    options = {"num_predict": 100_000, "num_batch": long_prompt(path)["options"]["num_batch"]}
    raw = json.dumps({"model": "fake", "prompt": "Q: one\nA:", "options": options}).encode()
    holder.sendall(
        b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    deadline = time.monotonic() + 10
    while not forwards(setup, 3)():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    leave_queued(server.url, path, long_prompt(path), lambda: scheduler._pending >= 8)
    deadline = time.monotonic() + 2
    while scheduler._pending and time.monotonic() < deadline:  # they leave the queue at once
        time.sleep(0.02)
    assert scheduler._pending == 0
    fed = setup.runner.tokens_fed
    holder.close()
    assert stops(lambda: setup.runner.forward_calls)
    assert setup.runner.tokens_fed - fed < 100  # none of their 4,000-token prompts ran
    assert two_tokens(server.url) < 2.0


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed"])
def test_clients_that_leave_while_the_model_loads_never_take_a_slot(make_fake, path):
    setup = make_fake(num_parallel=1)
    setup.model(endless=True, step_delay=STEP, load_delay=1.5)
    scheduler = setup.kernel.scheduler
    body = long_prompt(path) if path != "/api/embed" else {"model": "fake", "input": ["x"] * 500}
    with setup.server() as server:
        leave_queued(server.url, path, body, lambda: scheduler._pending >= 8)
        deadline = time.monotonic() + 1.0  # well before the load ends
        while scheduler._pending and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler._pending == 0
        deadline = time.monotonic() + 5
        while not (setup.engine.runners and scheduler.ps()):
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.02)
        assert two_tokens(server.url) < 2.0
        assert setup.runner.tokens_fed < 100  # only the 2-token request's prompt and answer


def test_a_client_that_leaves_while_its_inputs_are_tokenized_stops_them(running):
    """Tokenizing a batch is work too (64 MiB of text takes minutes): it stops between inputs."""
    setup, server = running
    two_tokens(server.url)  # the model is loaded
    tokenizer, tokenized = setup.runner.tokenizer, []
    encode = tokenizer.encode

    def slow_encode(text, *args, **kwargs):
        if text.startswith("input "):
            time.sleep(0.01)
            tokenized.append(text)
        return encode(text, *args, **kwargs)

    tokenizer.encode = slow_encode
    inputs = [f"input {n}" for n in range(1000)]  # 10 s of tokenizing
    walk_away(server.url, "/api/embed", {"model": "fake", "input": inputs}, lambda: tokenized)
    assert stops(lambda: len(tokenized))
    assert len(tokenized) < 500
