"""Sliding-window layers keep a ring of their window (and a step) instead of ``num_ctx`` rows:
on the tiny gemma2, gpt-oss, gemma3 and gemma4 models (gemma4's windowed layers with narrower
heads than its global ones), a ring answers as the full cache does, through
prompts and decoding longer than the ring, truncation, a context shift and a copied prefix."""

from __future__ import annotations

import numpy as np
import pytest
from ollamakit_engine.graph_cache import GraphKVCache, cache_bytes
from ollamakit_ggml import GgmlBackend

from ollamakit.testing import architectures

from .tiny_models import load, write_model

NUM_CTX, NUM_BATCH = 1024, 32  # rings of 256 cells: the window (8) and a step, padded
PROMPT = [int(t) for t in np.random.default_rng(1).integers(3, 90, 600)]
# float32 caches, so that only the order of the sums differs: with float16 ones ggml's attention
# also accumulates in float16, in another order over 512 cells or more (split among threads)
# than over fewer, which moves logits by hundredths; it does the same in llama.cpp, whose SWA
# cache Gemma 3 270M's ring matches bit for bit (test_llamacpp_agreement, gemma3/window)
ATOL = 1e-3
# gemma4 scores normed queries against normed keys unscaled, so its softmax is sharp and the order
# of its sums shows more: the ring's first logits are 1.2e-3 from the full cache's (equal with
# the fixture's embeddings at a third of their size, as are gemma2's at its own)
ATOLS = {"gemma4": 3e-3}


def atol(runner) -> float:
    return ATOLS.get(runner.hp.arch, ATOL)


@pytest.fixture(scope="module")
def backend():
    return GgmlBackend()


@pytest.fixture(scope="module", params=["gemma2", "gpt-oss", "gemma3", "gemma4"])
def runner(request, tmp_path_factory, backend):
    path = tmp_path_factory.mktemp("swa") / f"{request.param}.gguf"
    if request.param == "gemma3":  # five local layers to a global one
        write_model(path, "gemma3", n_layers=6, n_heads=4, n_kv_heads=1, head_dim=32, window=8)
    else:
        architectures.build(request.param, path)
    return load(path, backend, num_batch=NUM_BATCH, kv_cache_type="f32")


def full_cache(runner) -> GraphKVCache:
    """A cache of num_ctx rows in every layer: the engine before rings."""
    return GraphKVCache(runner.lib, runner.hp, NUM_CTX, runner.cache_type, runner._rotate)


def position_bytes(cache) -> list[int]:
    """Bytes of one position's keys and values in each layer."""
    return [k + v for k, v in zip(cache.k_row, cache.v_row)]


def decode(runner, cache, logits, steps: int = 24) -> list[np.ndarray]:
    out = [logits]
    for _ in range(steps):
        out.append(runner.forward([(cache, [int(out[-1].argmax())])])[0])
    return out


def test_a_ring_answers_as_the_full_cache_and_takes_less(runner):
    ring, full = runner.new_cache(NUM_CTX), full_cache(runner)
    assert ring.ring == 256 and full.ring is None
    cells = [256 if local else NUM_CTX for local in runner.hp.swa_layers]
    assert ring.nbytes == sum(n * row for n, row in zip(cells, position_bytes(ring)))
    assert runner.cache_bytes(NUM_CTX) == ring.nbytes < full.nbytes
    ours = decode(runner, ring, runner.forward([(ring, PROMPT)])[0])
    before = decode(runner, full, runner.forward([(full, PROMPT)])[0])
    for a, b in zip(ours, before):  # 624 positions: the ring has wrapped twice
        np.testing.assert_allclose(a, b, atol=atol(runner))
        assert a.argmax() == b.argmax()


def test_truncating_within_the_ring_keeps_it_and_beyond_starts_again(runner):
    cache = runner.new_cache(NUM_CTX)
    runner.forward([(cache, PROMPT)])
    assert cache.truncate(590) == 590  # the window of position 590 is still held
    again = runner.forward([(cache, PROMPT[590:] + [7])])[0]
    fresh = runner.forward([(full_cache(runner), PROMPT + [7])])[0]
    np.testing.assert_allclose(again, fresh, atol=atol(runner))
    # the window of position 300 was overwritten long ago: nothing can be kept
    assert cache.truncate(300) == 0 and cache.n_past == 0
    np.testing.assert_allclose(runner.forward([(cache, PROMPT + [7])])[0], fresh, atol=atol(runner))


def test_a_context_shift_moves_the_rings_as_the_full_cache(runner):
    ring, full = runner.new_cache(NUM_CTX), full_cache(runner)
    for cache in (ring, full):
        runner.forward([(cache, PROMPT)])
        assert cache.shift(4, 298)  # the kept tail wraps around the ring's end
        assert cache.n_past == 302
    ours = decode(runner, ring, runner.forward([(ring, [11])])[0])
    before = decode(runner, full, runner.forward([(full, [11])])[0])
    for a, b in zip(ours, before):
        np.testing.assert_allclose(a, b, atol=atol(runner))
    # a shift that would leave the rings without the next token's window is refused untouched
    cache = runner.new_cache(NUM_CTX)
    runner.forward([(cache, PROMPT)])  # the rings hold positions 344...599
    assert not cache.shift(300, 297) and cache.n_past == 600


def test_a_prefix_copied_from_another_cache_answers_as_evaluated(runner):
    source = runner.new_cache(NUM_CTX)
    runner.forward([(source, PROMPT)])
    copy = runner.new_cache(NUM_CTX)
    runner.forward([(copy, [5, 6, 7])])  # held something else before
    assert copy.copy_prefix(source, 590) and copy.n_past == 590
    copied = runner.forward([(copy, [9, 9, 4])])[0]
    fresh = runner.forward([(full_cache(runner), PROMPT[:590] + [9, 9, 4])])[0]
    np.testing.assert_allclose(copied, fresh, atol=atol(runner))
    # the source's rings no longer hold position 300's window; other shapes are refused
    assert not copy.copy_prefix(source, 300) and copy.n_past == 593
    assert not copy.copy_prefix(runner.new_cache(NUM_CTX // 2), 1)
    assert not copy.copy_prefix(full_cache(runner), 1)


def test_the_estimate_counts_the_rings(runner):
    hp = runner.hp
    rows = position_bytes(runner.new_cache(8))
    # window 8 and a step of 512, padded to 768 cells
    ring = sum((768 if local else 8192) * row for local, row in zip(hp.swa_layers, rows))
    assert cache_bytes(hp, 8192, 512, "f32") == ring
    assert cache_bytes(hp, 768, 512, "f32") == 768 * sum(rows)  # no ring, no smaller


@pytest.mark.real_model
def test_gemma3_270m_is_estimated_with_its_rings(backend):
    """Before loading, the estimate that refuses a request and chooses the slots counts the
    rings: at num_ctx 32768, 3 global layers of 32768 cells and 15 rings of 1024 (the window of
    512 and a step of 512), keys and values of one head of 256 float16 values each."""
    from ollamakit_engine.loader import estimate_bytes

    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing import models

    with GGUFFile.open(models.gemma3_270m()) as gguf:
        weights = sum(info.nbytes for info in gguf.tensors)
        estimate = estimate_bytes(gguf, backend, 32768, 2)
    assert estimate == weights + 2 * (3 * 32768 + 15 * 1024) * 2 * 512
