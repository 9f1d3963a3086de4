"""The exact bodies Open WebUI 0.12.4 sent to ``POST /api/chat`` for a first message from its chat
page (recorded by ``benchmarks/bench_openwebui.py``; ``tests/reference/README.md`` says how),
replayed byte for byte through real HTTP against a tiny model: every part of them is accepted
and used (the turn's tool definitions reach the prompt; the title task's option is one the server
honours), and each answer comes back as its ``stream`` asks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import httpx
import ollama
import pytest

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.options import PARAMETER_KINDS, merged
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.smollm2 import TOOLS_TEMPLATE
from ollamakit_scheduler.testing import serve_in_thread

FOLDER = Path(__file__).parents[2] / "reference" / "openwebui-0.12.4"
# the turn, then the background tasks Open WebUI runs after it; the bytes as the server's
# OLLAMA_DEBUG_LOG_REQUESTS log wrote them
RAW = {
    name: (FOLDER / f"{name}.json").read_bytes()
    for name in ("1-chat", "2-follow-ups", "3-title", "4-tags")
}
BODIES = {name: json.loads(raw) for name, raw in RAW.items()}
MODEL = BODIES["1-chat"]["model"]
NUM_CTX = 2048
NUM_PREDICT = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("openwebui")
    kernel = make_kernel(replace(Settings(models_dir=tmp_path / "models"), num_parallel=1))
    path = tiny_llama(tmp_path / "tiny.gguf", context_length=8192)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with serve_in_thread(kernel) as server:
            client = ollama.Client(host=server.url)
            client.create_blob(path)
            # as the benchmark makes SmolLM2: ChatML with tools, under the name Open WebUI sent.
            # The model's parameters stand where the bodies set nothing: a short answer, and a
            # context of NUM_CTX that keeps the prompts quick to evaluate
            client.create(
                model=MODEL,
                files={"tiny.gguf": digest},
                template=TOOLS_TEMPLATE,
                parameters={"num_predict": NUM_PREDICT, "temperature": 0, "num_ctx": NUM_CTX},
            )
            yield server.url
    finally:
        kernel.close()


def replay(url: str, raw: bytes) -> tuple[httpx.Response, list[dict]]:
    with httpx.stream(
        "POST",
        f"{url}/api/chat",
        content=raw,
        headers={"Content-Type": "application/json"},
        timeout=300,
    ) as reply:
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    return reply, lines


def test_the_records_are_what_open_webui_sends():
    """What the replay covers: a first turn with Open WebUI's built-in tools, streamed, with no
    options (so the model's and the server's defaults apply); then three tasks, not streamed,
    the title's with ``num_predict``."""
    chat = BODIES["1-chat"]
    assert set(chat) == {"model", "messages", "stream", "tools"} and chat["stream"] is True
    assert [m["role"] for m in chat["messages"]] == ["user"]
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert len(names) == 36 and "get_current_timestamp" in names and len(set(names)) == 36
    for name in ("2-follow-ups", "3-title", "4-tags"):
        body = BODIES[name]
        assert body["model"] == MODEL and body["stream"] is False and "tools" not in body
    assert BODIES["3-title"]["options"] == {"num_predict": 1000}


def test_the_turn_is_served_whole_with_its_tools(served):
    reply, lines = replay(served, RAW["1-chat"])
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    *chunks, final = lines
    assert chunks and all(not c["done"] and c["message"]["role"] == "assistant" for c in chunks)
    assert final["done"] is True and final["done_reason"] in ("stop", "length")
    assert final["model"] == MODEL and final["eval_count"] == NUM_PREDICT
    # the tool definitions (26,000 bytes of JSON, a token a byte here) overfill the context, as
    # they overfill SmolLM2's default 4096 (5,908 tokens): the prompt is cut to fit, as Ollama
    # cuts it, rather than refused
    assert final["prompt_eval_count"] == NUM_CTX
    without = json.dumps({**BODIES["1-chat"], "tools": []}).encode()
    _, lines = replay(served, without)
    assert lines[-1]["done"] and lines[-1]["prompt_eval_count"] < 200


@pytest.mark.parametrize("name", ["2-follow-ups", "4-tags"])
def test_the_background_tasks_are_answered_in_one_object(served, name):
    reply, lines = replay(served, RAW[name])
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    [answer] = lines
    assert answer["done"] is True and answer["message"]["role"] == "assistant"
    # the task prompt whole: it fits the context
    assert answer["prompt_eval_count"] > len(BODIES[name]["messages"][0]["content"])
    assert answer["eval_count"] <= NUM_PREDICT


def test_the_title_tasks_options_are_all_honoured():
    """The title task's ``num_predict`` of 1000 is an option the server knows (unknown ones are
    skipped, as Ollama skips them) and wins over the model's parameter. Replaying it whole
    would decode up to 1000 tokens of a random model: too long for a test; its body is the
    other tasks' but for the prompt and this option."""
    options = BODIES["3-title"]["options"]
    assert set(options) <= set(PARAMETER_KINDS)
    assert merged({"num_predict": NUM_PREDICT}, options).num_predict == 1000
    assert set(BODIES["3-title"]) - {"options"} == set(BODIES["4-tags"])
