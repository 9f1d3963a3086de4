"""The exact body Open WebUI's chat page had sent to ``POST /api/chat`` (recorded by
``benchmarks/bench_openwebui.py``; ``tests/reference/README.md`` says how), replayed byte for
byte through real HTTP against a tiny model: every part of it is accepted and used, its tool
definitions reach the prompt, and the answer streams as NDJSON to the end."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import httpx
import ollama
import pytest

from ollamakit.kernel import make_kernel
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.smollm2 import TOOLS_TEMPLATE
from ollamakit_scheduler.testing import serve_in_thread

# the bytes the server's OLLAMA_DEBUG_LOG_REQUESTS log wrote, as they came
RAW = (Path(__file__).parents[2] / "reference" / "openwebui-0.12.4-chat-body.json").read_bytes()
BODY: dict = json.loads(RAW)
NUM_CTX = 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ollamakit.config import Settings

    tmp_path = tmp_path_factory.mktemp("openwebui")
    kernel = make_kernel(replace(Settings(models_dir=tmp_path / "models"), num_parallel=1))
    path = tiny_llama(tmp_path / "tiny.gguf", context_length=8192)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with serve_in_thread(kernel) as server:
            client = ollama.Client(host=server.url)
            client.create_blob(path)
            # as the benchmark makes SmolLM2: ChatML with tools; the name is the one Open WebUI
            # sent. The body sets no options: the model's parameters bound the answer, and a
            # context of NUM_CTX keeps the prompt quick to evaluate
            client.create(
                model=BODY["model"],
                files={"tiny.gguf": digest},
                template=TOOLS_TEMPLATE,
                parameters={"num_predict": 6, "temperature": 0, "num_ctx": NUM_CTX},
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


def test_the_record_is_what_open_webui_sends():
    """What the replay covers: a first turn with Open WebUI's built-in tools, streamed, and no
    options (so the model's and the server's defaults apply)."""
    assert set(BODY) == {"model", "messages", "stream", "tools"}
    assert BODY["stream"] is True
    assert [m["role"] for m in BODY["messages"]] == ["user"]
    names = [tool["function"]["name"] for tool in BODY["tools"]]
    assert len(names) > 20 and "get_current_timestamp" in names and len(set(names)) == len(names)


def test_open_webuis_chat_body_is_served_whole(served):
    reply, lines = replay(served, RAW)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    *chunks, final = lines
    assert all(not line.get("done") and line["message"]["role"] == "assistant" for line in chunks)
    assert final["done"] is True and final["done_reason"] in ("stop", "length")
    assert final["model"] == BODY["model"] and final["eval_count"] <= 6
    # the tool definitions (26,000 bytes of JSON, a token a byte here) overfill the context, as
    # they overfill SmolLM2's default 4096: the prompt is cut to fit, as Ollama cuts it, rather
    # than refused
    assert final["prompt_eval_count"] == NUM_CTX
    without = json.dumps({**BODY, "tools": []}).encode()
    _, lines = replay(served, without)
    assert lines[-1]["done"] and lines[-1]["prompt_eval_count"] < 200
