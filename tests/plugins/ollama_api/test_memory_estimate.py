"""A model is sized before it loads: its weights and every slot's cache for the context asked
for, so one that cannot fit is refused up front, with the memory it would need."""

from __future__ import annotations

import hashlib

from ollamakit.testing.gguf_factory import tiny_llama

TRAINED = 1024  # the model's training context
PAD = 256  # a cache holds a whole number of 256-cell blocks, as llama.cpp's does


def create(client, tmp_path) -> None:
    data = tiny_llama(tmp_path / "tiny.gguf", context_length=TRAINED).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert (
        client.simulate_post(
            "/api/create", json={"model": "tiny", "files": {"tiny.gguf": digest}}
        ).status_code
        == 200
    )


def generate(client, num_ctx: int):
    body = {
        "model": "tiny",
        "prompt": "hi",
        "stream": False,
        "options": {"num_ctx": num_ctx, "num_predict": 1},
    }
    return client.simulate_post("/api/generate", json=body)


def test_the_cache_for_the_context_asked_for_counts_before_loading(client, kernel, tmp_path):
    create(client, tmp_path)
    model = kernel.store.get("tiny")

    def estimate(num_ctx, num_parallel=1):
        return kernel.hook.estimate_memory(
            kernel=kernel, model=model, num_ctx=num_ctx, num_parallel=num_parallel
        )

    small, large = estimate(16), estimate(TRAINED)
    assert estimate(PAD) == small  # 16 positions take a whole block
    assert small < large and estimate(2 * TRAINED) == large  # no cache beyond the training context
    assert (estimate(TRAINED, 2) - large) * (TRAINED - PAD) == (
        large - small
    ) * TRAINED  # a cache per slot, linear in length

    kernel.scheduler.memory_budget = (small + large) // 2
    refused = generate(client, TRAINED)
    assert refused.status_code == 500
    assert "requires more system memory" in refused.json["error"]
    assert kernel.scheduler.ps() == []  # never loaded
    assert generate(client, 16).status_code == 200
