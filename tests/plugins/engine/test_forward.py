"""The decoder engine against a naive float64 reference, and the cache/batching invariants."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.errors import BadRequest, InvalidModelFile

from .tiny_models import VOCAB, load, reference_logits, write_model

PROMPT = [5, 17, 3, 88, 42, 9, 61, 23, 70, 1, 33]

MODELS = {
    "llama": dict(arch="llama"),
    "qwen2": dict(arch="qwen2", biases=True),
    # six layers: five sliding-window layers (window 4, shorter than the prompt) and one global
    "gemma3": dict(
        arch="gemma3", n_layers=6, n_heads=4, n_kv_heads=1, head_dim=32, window=4, softcap=30.0
    ),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / f"{request.param}.gguf"
    meta, tensors = write_model(path, **MODELS[request.param])
    return path, meta, tensors


def test_prompt_logits_match_reference(tiny):
    path, meta, tensors = tiny
    expected = reference_logits(meta, tensors, PROMPT)
    runner = load(path)
    logits = runner.forward([(runner.new_cache(32), PROMPT)])[0]
    assert logits.shape == (VOCAB,) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected[-1], atol=2e-4, rtol=1e-4)


def test_decode_one_token_at_a_time_matches_reference(tiny):
    path, meta, tensors = tiny
    expected = reference_logits(meta, tensors, PROMPT)
    runner = load(path)
    cache = runner.new_cache(32)
    got = np.stack([runner.forward([(cache, [token])])[0] for token in PROMPT])
    assert cache.n_past == len(PROMPT)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_chunked_prompt_equals_whole_prompt(tiny):
    path, _, _ = tiny
    whole = load(path)
    chunked = load(path, num_batch=3)
    a = whole.forward([(whole.new_cache(32), PROMPT)])[0]
    b = chunked.forward([(chunked.new_cache(32), PROMPT)])[0]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_batched_sequences_equal_separate_runs(tiny):
    path, _, _ = tiny
    runner = load(path, num_batch=8)
    prompts = [PROMPT, [7, 7, 2], [90]]
    alone = []
    for prompt in prompts:
        cache = runner.new_cache(32)
        first = runner.forward([(cache, prompt)])[0]
        alone.append([first] + [runner.forward([(cache, [t])])[0] for t in (4, 50, 11)])
    caches = [runner.new_cache(32) for _ in prompts]
    together = [runner.forward(list(zip(caches, prompts)))]  # 15 rows over two steps of 8
    for token in (4, 50, 11):
        together.append(runner.forward([(cache, [token]) for cache in caches]))
    for step, outputs in enumerate(together):
        for seq, logits in enumerate(outputs):
            np.testing.assert_allclose(logits, alone[seq][step], atol=1e-4)


def test_mixed_prompt_and_decode_in_one_call(tiny):
    path, _, _ = tiny
    runner = load(path)
    decoding = runner.new_cache(32)
    runner.forward([(decoding, PROMPT[:4])])
    fresh = runner.new_cache(32)
    mixed = runner.forward([(decoding, [PROMPT[4]]), (fresh, PROMPT)])
    check = runner.new_cache(32)
    np.testing.assert_allclose(mixed[0], runner.forward([(check, PROMPT[:5])])[0], atol=1e-4)
    np.testing.assert_allclose(
        mixed[1], runner.forward([(runner.new_cache(32), PROMPT)])[0], atol=1e-4
    )


def test_truncate_rewinds_the_cache(tiny):
    path, _, _ = tiny
    runner = load(path)
    cache = runner.new_cache(32)
    runner.forward([(cache, PROMPT)])
    cache.truncate(4)
    assert cache.n_past == 4
    again = runner.forward([(cache, PROMPT[4:])])[0]
    np.testing.assert_allclose(
        again, runner.forward([(runner.new_cache(32), PROMPT)])[0], atol=1e-5
    )
    cache.truncate(100)  # holding fewer tokens than asked: nothing to drop
    assert cache.n_past == len(PROMPT)


def test_errors_are_bad_requests(tiny):
    path, _, _ = tiny
    runner = load(path)
    cache = runner.new_cache(8)
    with pytest.raises(BadRequest, match="exceed the context"):
        runner.forward([(cache, list(range(9)))])
    assert cache.n_past == 0  # checked before any work
    with pytest.raises(BadRequest, match="outside the vocabulary"):
        runner.forward([(cache, [VOCAB])])
    with pytest.raises(BadRequest, match="no tokens"):
        runner.forward([(cache, [])])
    with pytest.raises(BadRequest, match="twice"):
        runner.forward([(cache, [1]), (cache, [2])])
    with pytest.raises(BadRequest):
        load(path, num_batch=0)


def test_embed_pools_normed_hidden_states(tiny):
    path, _, _ = tiny
    runner = load(path)
    vectors = runner.embed([PROMPT, PROMPT[:3]])
    width = runner.hp.n_embd
    assert [v.shape for v in vectors] == [(width,), (width,)]
    assert not np.allclose(vectors[0], vectors[1])
    # last-token pooling: the same prompt embedded alone gives the same vector
    np.testing.assert_allclose(runner.embed([PROMPT])[0], vectors[0], atol=1e-5)


def test_memory_counts_weights_and_caches(tiny):
    path, _, _ = tiny
    runner = load(path)
    before = runner.memory_bytes
    assert before > 0
    cache = runner.new_cache(64)
    assert runner.memory_bytes == before + cache.nbytes


def test_unknown_architecture_and_missing_tensor(tmp_path):
    path = tmp_path / "m.gguf"
    meta, tensors = write_model(path, "llama")
    from ollamakit.testing.gguf_factory import make_gguf

    make_gguf(tmp_path / "mamba.gguf", {**meta, "general.architecture": "mamba"}, tensors)
    with pytest.raises(InvalidModelFile, match="unsupported model architecture"):
        load(tmp_path / "mamba.gguf")
    del tensors["blk.1.ffn_up.weight"]
    make_gguf(tmp_path / "broken.gguf", meta, tensors)
    with pytest.raises(InvalidModelFile, match="blk.1.ffn_up.weight"):
        load(tmp_path / "broken.gguf")
    make_gguf(tmp_path / "heads.gguf", {**meta, "llama.attention.head_count_kv": 3}, tensors)
    with pytest.raises(InvalidModelFile, match="evenly"):
        load(tmp_path / "heads.gguf")
