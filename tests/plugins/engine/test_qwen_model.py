"""Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB) on the ggml backend: memory, a greedy decode,
llama.cpp's greedy tokens, and a chat through the HTTP API.

The model is fetched once (22 registry parts) and needs a few GB of memory and about a minute
on two cores, so it is off by default: ``pytest -m large_model tests/plugins/engine/test_qwen_model.py``.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend

from ollamakit.testing import models

pytestmark = [pytest.mark.real_model, pytest.mark.slow, pytest.mark.large_model]

PROMPT = "def quicksort(arr):"
REFERENCE_TOKENS = 32
# Our graphs and llama.cpp's run the same ggml kernels, but the order of a few sums (threads,
# graph shapes) may differ; that can only flip a choice llama.cpp itself made by a hair.
NEAR_TIE = 0.02  # logits


@cache
def runner():
    return load_runner(models.qwen25_coder_1_5b(), GgmlBackend(), {"num_thread": 2})


def greedy(model, prompt_ids: list[int], steps: int) -> list[int]:
    cache = model.new_cache(len(prompt_ids) + steps)
    logits = model.forward([(cache, prompt_ids)])[0]
    chosen = []
    for _ in range(steps):
        chosen.append(int(np.argmax(logits)))
        logits = model.forward([(cache, [chosen[-1]])])[0]
    return chosen


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def test_weights_stay_in_their_quantized_blocks():
    """The runner reports, and the process holds, about the file's size: the Q4_K/Q6_K blocks
    are used where they lie in the mapping, never dequantized (float32 would be ~4x the file
    for the matrices alone)."""
    path = models.qwen25_coder_1_5b()
    size = path.stat().st_size
    before = resident_bytes()
    model = load_runner(path, GgmlBackend(), {"num_thread": 2}, with_tokenizer=False)
    try:
        assert 0.95 * size < model.memory_bytes <= size
        cache = model.new_cache(512)
        model.forward([(cache, list(range(1000, 1064)))])
        assert model.memory_bytes == model.weights.nbytes + cache.nbytes
        assert model.memory_bytes < 1.05 * size
        # a fresh mapping of the file counts again in this process's RSS once read, even if
        # another runner of the same file is resident, so this is this runner's own footprint
        assert resident_bytes() - before < 1.3 * size
    finally:
        model.close()


def test_greedy_decode_writes_python():
    model = runner()
    ids = model.tokenizer.encode(PROMPT, add_special=True, parse_special=True)
    text = model.tokenizer.decode(greedy(model, ids, 24))
    assert text.startswith("\n    "), repr(text)  # the function's indented body
    assert "arr" in text and ("return" in text or "if " in text), repr(text)


def test_greedy_tokens_match_llamacpp():
    """llama.cpp's own greedy tokens fed back one at a time (so one near-tie cannot derail the
    rest): at every step our choice is llama.cpp's, unless llama.cpp's top two logits were within
    NEAR_TIE of each other there. With no near-tie this is exactly our free-running greedy decode."""
    llama_cpp = pytest.importorskip("llama_cpp")
    path = models.qwen25_coder_1_5b()
    model = runner()
    ids = model.tokenizer.encode(PROMPT, add_special=True, parse_special=True)

    llm = llama_cpp.Llama(
        str(path), n_ctx=512, n_threads=2, flash_attn=True, logits_all=True, verbose=False
    )
    try:
        assert llm.tokenize(PROMPT.encode(), add_bos=True, special=True) == ids
        llm.eval(ids)
        reference, margins = [], []
        for _ in range(REFERENCE_TOKENS):
            row = llm.scores[llm.n_tokens - 1]
            second, first = np.sort(row)[-2:]
            margins.append(float(first - second))
            reference.append(int(np.argmax(row)))
            llm.eval([reference[-1]])
    finally:
        llm.close()

    cache = model.new_cache(512)
    logits = model.forward([(cache, ids)])[0]
    differing = []
    for position, want in enumerate(reference):
        got = int(np.argmax(logits))
        if got != want:
            differing.append(position)
            assert margins[position] < NEAR_TIE, (
                f"position {position}: chose {got}, llama.cpp chose {want} by a margin of {margins[position]:.3f}"
            )
        logits = model.forward([(cache, [want])])[0]
    assert len(differing) <= 2, (
        f"near-ties at {differing}: more than a couple means the numerics drifted"
    )


def test_chat_through_the_api(client, models_dir):
    """/api/chat on the model created from its GGUF, the way a client uploads it. The blob is
    linked into the store under its known digest rather than uploaded: 1.1 GB through the test
    client would only exercise the upload, which other tests cover."""
    path = models.qwen25_coder_1_5b()
    digest = "sha256:" + models.QWEN25_CODER_SHA256
    blob = models_dir / "blobs" / digest.replace(":", "-")
    blob.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, blob)
    except OSError:  # another filesystem
        blob.symlink_to(path)
    created = client.simulate_post(
        "/api/create", json={"model": "qwen-coder", "files": {"qwen.gguf": digest}}
    )
    assert created.status_code == 200, created.text
    assert '"success"' in created.text

    reply = client.simulate_post(
        "/api/chat",
        json={
            "model": "qwen-coder",
            "messages": [
                {
                    "role": "user",
                    "content": "Write a Python function that adds two numbers. Only code.",
                }
            ],
            "options": {"temperature": 0, "num_predict": 40, "num_thread": 2},
            "stream": False,
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json
    assert body["done"] is True and body["eval_count"] <= 40
    assert body["message"]["role"] == "assistant"
    assert "def " in body["message"]["content"] and "return" in body["message"]["content"], body[
        "message"
    ]
