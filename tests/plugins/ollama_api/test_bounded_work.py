"""Requests that could run without end are bounded: ``num_predict`` -1 ends at a stop or ten
windows' worth, -2 when the window is full, any count at the server's ceiling
(``OLLAMAKIT_MAX_PREDICT``); and a chat far longer than the context is cut to fit in time
linear in its length."""

from __future__ import annotations

import time

import pytest

from ollamakit.config import DEFAULT_MAX_PREDICT, Settings
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

PROMPT = "Q: one\nA:"


@pytest.fixture
def endless(make_fake):
    """A model that never says end-of-text, and a server ceiling of 300 tokens."""
    setup = make_fake(max_predict=300)
    setup.model(endless=True)
    return setup


def generate(setup, **options):
    return setup.client.simulate_post(
        "/api/generate",
        json={
            "model": "fake",
            "prompt": PROMPT,
            "stream": False,
            "options": {"temperature": 0, **options},
        },
    )


def test_minus_two_fills_the_window(endless):
    reply = generate(endless, num_predict=-2, num_ctx=64).json
    assert reply["done_reason"] == "length"
    # The window was filled: every generated token but the last (never fed back) is in it.
    assert reply["prompt_eval_count"] + reply["eval_count"] - 1 == 64


@pytest.mark.parametrize("num_predict", [-1, -7])
def test_minus_one_shifts_the_window_up_to_ten_windows(endless, num_predict):
    reply = generate(endless, num_predict=num_predict, num_ctx=16).json
    assert reply["done_reason"] == "length" and reply["eval_count"] == 160


@pytest.mark.parametrize("num_predict", [2**63 - 1, 10**6, 301])
def test_a_huge_count_stops_at_the_ceiling(endless, num_predict):
    started = time.monotonic()
    reply = generate(endless, num_predict=num_predict, num_ctx=64).json
    assert (
        reply["done_reason"] == "length" and reply["eval_count"] == 300
    )  # shifted past 64, then the ceiling
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("num_predict", [-1, -2])
def test_a_large_context_stops_at_the_ceiling(endless, num_predict):
    reply = generate(endless, num_predict=num_predict, num_ctx=4096).json
    assert reply["done_reason"] == "length" and reply["eval_count"] == 300


def test_counts_under_the_ceiling_are_kept(endless):
    reply = generate(endless, num_predict=80, num_ctx=32).json
    assert reply["done_reason"] == "length" and reply["eval_count"] == 80  # the window shifted


def test_num_predict_beyond_int64_is_refused(endless):
    reply = generate(endless, num_predict=2**63)
    assert reply.status_code == 400 and reply.json == {
        "error": 'option "num_predict" must be of type integer'
    }


def test_openai_max_tokens_minus_one_is_bounded(endless):
    reply = endless.client.simulate_post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "max_tokens": -1,
            "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT}],
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 300


def test_the_ceiling_is_a_setting(monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_MAX_PREDICT", "1234")
    assert Settings.from_env().max_predict == 1234
    for value in ("", "0", "-5", "lots"):
        monkeypatch.setenv("OLLAMAKIT_MAX_PREDICT", value)
        assert Settings.from_env().max_predict == DEFAULT_MAX_PREDICT


def test_a_chat_of_ten_thousand_messages_is_cut_to_fit_promptly(make_fake):
    setup = make_fake()
    setup.model(script="Q: one\nA: the first answer.\n")
    messages = []
    for n in range(5000):
        messages += [
            {"role": "user", "content": f"question {n}"},
            {"role": "assistant", "content": f"answer {n}"},
        ]
    messages[0] = {"role": "system", "content": "SYSTEM"}
    messages.append({"role": "user", "content": PROMPT})
    started = time.monotonic()
    reply = setup.client.simulate_post(
        "/api/chat",
        json={
            "model": "fake",
            "messages": messages,
            "stream": False,
            "options": {"temperature": 0, "num_ctx": 512, "num_predict": 4},
        },
    )
    elapsed = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.json["prompt_eval_count"] <= 512
    assert elapsed < 10, f"{elapsed:.1f} s"
