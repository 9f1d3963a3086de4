"""Sliding-window layers keep a ring of their window instead of the whole context: the logits
must be exactly those of a full cache, past the window and after the ring wraps several times.
A prefix copied from another sequence's cache (``copy_prefix``) answers as if evaluated."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit_engine import KVCache
from ollamakit_engine.cache import ATTENTION_ROWS, cache_bytes, ring_period

from .tiny_models import VOCAB, load, reference_logits, write_model

WINDOW = 6
NUM_CTX = 400  # a ring (two periods of WINDOW + ATTENTION_ROWS) is smaller
PROMPT = [int(t) for t in np.random.default_rng(3).integers(0, VOCAB, 300)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("ring") / "gemma3.gguf"
    meta, tensors = write_model(
        path, "gemma3", n_layers=6, n_heads=4, n_kv_heads=1, head_dim=32, window=WINDOW
    )
    return path, meta, tensors


@pytest.fixture(scope="module")
def gemma(model):
    path, meta, tensors = model
    return load(path, num_batch=100), meta, tensors


def run(runner, cache, prompt, decode):
    """Logits after the prompt, then after each greedily chosen token."""
    out = [runner.forward([(cache, prompt)])[0]]
    for _ in range(decode):
        out.append(runner.forward([(cache, [int(np.argmax(out[-1]))])])[0])
    return np.stack(out)


def test_ring_equals_full_cache_past_the_window(gemma):
    runner, meta, tensors = gemma
    ring = runner.new_cache(NUM_CTX)
    full = KVCache(np, runner.hp, NUM_CTX, ring=False)
    period = ring_period(runner.hp, NUM_CTX)
    assert period == WINDOW + ATTENTION_ROWS
    # Sliding-window layers hold two periods; the global layer (every sixth) the whole context.
    assert [layer.keys.shape[1] for layer in ring.layers] == [2 * period] * 5 + [NUM_CTX]
    assert ring.nbytes < full.nbytes
    assert ring.nbytes == cache_bytes(runner.hp, NUM_CTX) == runner.cache_bytes(NUM_CTX)
    # 300 prompt tokens in steps of 100 rows, then 30 decoded: the ring wraps twice.
    with_ring, with_full = run(runner, ring, PROMPT, 30), run(runner, full, PROMPT, 30)
    np.testing.assert_array_equal(with_ring, with_full)
    tokens = PROMPT + [int(np.argmax(row)) for row in with_full[:-1]]
    np.testing.assert_allclose(
        with_ring[-1], reference_logits(meta, tensors, tokens)[-1], atol=2e-4
    )


def test_ring_truncation_keeps_what_it_still_holds(gemma):
    runner, _, _ = gemma
    cache, full = runner.new_cache(NUM_CTX), KVCache(np, runner.hp, NUM_CTX, ring=False)
    first = runner.forward([(cache, PROMPT)])[0]
    runner.forward([(full, PROMPT)])
    # Dropping a few tokens leaves their window in the ring: evaluating them again is exact.
    assert cache.truncate(len(PROMPT) - 5) == len(PROMPT) - 5
    full.truncate(len(PROMPT) - 5)
    again = runner.forward([(cache, PROMPT[-5:])])[0]
    np.testing.assert_array_equal(again, runner.forward([(full, PROMPT[-5:])])[0])
    # Going back further than the ring reaches keeps nothing; the caller starts over.
    assert cache.truncate(100) == 0 and cache.n_past == 0
    assert full.truncate(100) == 100
    np.testing.assert_array_equal(runner.forward([(cache, PROMPT)])[0], first)


def test_short_contexts_and_full_layers_keep_a_full_cache(gemma):
    runner, _, _ = gemma
    assert (
        ring_period(runner.hp, 2 * (WINDOW + ATTENTION_ROWS)) is None
    )  # a ring would be no smaller
    short = runner.new_cache(64)
    assert all(layer.period is None for layer in short.layers)
    assert short.nbytes == cache_bytes(runner.hp, 64)
    short.n_past = 60
    assert short.truncate(2) == 2  # nothing is overwritten in a full cache


def test_prompt_blocks_attend_only_within_their_window(model):
    # One step of 300 rows: attention blocks of 128 rows each start their keys at their own
    # first row's window, not at the step's.
    path, meta, tensors = model
    runner = load(path)
    ring, full = runner.new_cache(NUM_CTX), KVCache(np, runner.hp, NUM_CTX, ring=False)
    logits = runner.forward([(ring, PROMPT)])[0]
    np.testing.assert_array_equal(logits, runner.forward([(full, PROMPT)])[0])
    np.testing.assert_allclose(logits, reference_logits(meta, tensors, PROMPT)[-1], atol=2e-4)


def test_a_prefix_copied_from_another_cache_answers_as_evaluated(gemma, tmp_path):
    """As on the ggml engine (tests/plugins/engine/test_sliding_window.py): the copy replaces
    what the cache held, and the next tokens' logits equal a fresh evaluation of the prefix."""
    ringed, _, _ = gemma
    write_model(tmp_path / "llama.gguf", "llama")
    for runner, keep in ((ringed, 290), (load(tmp_path / "llama.gguf"), 150)):
        source = runner.new_cache(NUM_CTX)
        runner.forward([(source, PROMPT)])
        copy = runner.new_cache(NUM_CTX)
        runner.forward([(copy, [5, 6, 7])])  # held something else before
        assert copy.copy_prefix(source, keep) and copy.n_past == keep
        copied = run(runner, copy, [9, 9, 4], 5)
        fresh = run(
            runner, KVCache(np, runner.hp, NUM_CTX, ring=False), PROMPT[:keep] + [9, 9, 4], 5
        )
        # the same keys, computed in steps of other sizes: the matrix products round differently
        np.testing.assert_allclose(copied, fresh, atol=1e-5)
        assert (copied.argmax(axis=1) == fresh.argmax(axis=1)).all()
        # the source is untouched by what the copy went on to evaluate
        np.testing.assert_allclose(
            runner.forward([(source, [1])])[0],
            runner.forward([(KVCache(np, runner.hp, NUM_CTX, ring=False), PROMPT + [1])])[0],
            atol=1e-5,
        )


def test_a_prefix_that_cannot_be_copied_leaves_the_cache_as_it_was(gemma):
    runner, _, _ = gemma
    source, copy = runner.new_cache(NUM_CTX), runner.new_cache(NUM_CTX)
    runner.forward([(source, PROMPT)])
    runner.forward([(copy, PROMPT[:10])])
    # the source's rings hold positions 166...299: position 100's window is gone
    assert not copy.copy_prefix(source, 100)
    assert not copy.copy_prefix(source, len(PROMPT) + 1)  # more than it holds
    assert not copy.copy_prefix(source, 0)
    assert not copy.copy_prefix(copy, 5)
    assert not copy.copy_prefix(runner.new_cache(NUM_CTX // 2), 1)  # another shape
    assert not copy.copy_prefix(KVCache(np, runner.hp, NUM_CTX, ring=False), 1)  # no rings
    assert copy.n_past == 10
    np.testing.assert_allclose(
        runner.forward([(copy, [3])])[0],
        runner.forward([(runner.new_cache(NUM_CTX), PROMPT[:10] + [3])])[0],
        atol=1e-5,
    )


def test_a_ring_remembers_how_far_it_was_written_after_truncation(gemma):
    """Truncating twice: the second time the rings still miss what the furthest write
    overwrote, though ``n_past`` went back in between."""
    runner, _, _ = gemma
    cache = runner.new_cache(NUM_CTX)
    runner.forward([(cache, PROMPT)])  # rings of 134 rows hold positions 166...299
    assert cache.truncate(290) == 290
    # position 170's window (165...170) lost position 165 to position 299
    assert cache.truncate(170) == 0
