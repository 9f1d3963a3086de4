"""``num_thread``: the BLAS computes with that many threads while the model runs, and only then;
without it, the model measures whether every core or one is faster."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from ollamakit.errors import BadRequest
from ollamakit_engine.threads import PROBE_EVERY, ThreadChooser
from ollamakit_numpy import NumpyBackend

from .tiny_models import load, write_model

PROMPT = [5, 17, 3, 88, 42, 9, 61, 23]


def blas_threads() -> int:
    return ThreadpoolController().select(user_api="blas").lib_controllers[0].get_num_threads()


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("threads") / "llama.gguf"
    write_model(path, "llama")
    return path


def watch_threads(runner) -> list[int]:
    """Record the BLAS thread count at every step of ``runner``."""
    seen, step = [], runner.model.step

    def watched(segments, **options):
        seen.append(blas_threads())
        return step(segments, **options)

    runner.model.step = watched
    return seen


def test_num_thread_holds_for_the_forward_pass_only(path):
    outside = blas_threads()
    one = load(path, num_thread=1)
    assert one.threads == 1
    seen = watch_threads(one)
    logits = one.forward([(one.new_cache(16), PROMPT)])[0]
    one.embed([PROMPT])
    assert seen == [1, 1] and blas_threads() == outside
    default = load(path)
    assert default.threads == NumpyBackend.default_threads
    np.testing.assert_allclose(
        default.forward([(default.new_cache(16), PROMPT)])[0], logits, atol=1e-5
    )


def test_a_single_thread_needs_no_padded_matrices(tmp_path):
    # SmolLM2's attention output shape, just under the size OpenBLAS threads a product at.
    path = tmp_path / "padded.gguf"
    write_model(path, "llama", n_layers=1, n_embd=576, n_heads=9, n_kv_heads=3, n_ff=64)
    if NumpyBackend.default_threads > 1:
        assert load(path).model.weights.layers[0].attn_out.width == 576
    assert load(path, num_thread=1).model.weights.layers[0].attn_out.width is None


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_bad_num_thread_is_a_bad_request(path, value):
    with pytest.raises(BadRequest, match="num_thread"):
        load(path, num_thread=value)


def run_chooser(chooser, seconds_for, passes, sequences=1):
    """Drive ``chooser`` with decode passes whose time is ``seconds_for(threads)``."""
    used = []
    for _ in range(passes):
        threads = chooser.pick(sequences)
        used.append(threads)
        chooser.record(threads, sequences, seconds_for(threads))
    return used


def test_the_chooser_keeps_every_core_while_they_are_faster():
    chooser = ThreadChooser(2)
    used = run_chooser(chooser, {2: 0.030, 1: 0.050}.get, 10 * PROBE_EVERY)
    assert chooser.current == 2
    assert used.count(1) == 10  # one probe in PROBE_EVERY passes
    assert chooser.pick(None) == 2  # prompt passes never probe


def test_the_chooser_moves_to_one_thread_under_contention_and_back():
    chooser = ThreadChooser(2)
    run_chooser(chooser, {2: 0.030, 1: 0.050}.get, PROBE_EVERY)
    run_chooser(chooser, {2: 0.090, 1: 0.045}.get, PROBE_EVERY)  # a busy neighbour arrives
    assert chooser.current == 1
    used = run_chooser(chooser, {2: 0.030, 1: 0.050}.get, PROBE_EVERY)  # and leaves
    assert chooser.current == 2 and used[-1] == 2


def test_the_chooser_compares_passes_of_the_same_number_of_sequences():
    chooser = ThreadChooser(2)
    run_chooser(chooser, {2: 0.030, 1: 0.050}.get, PROBE_EVERY - 1)
    # A probe of four sequences is slower than one sequence on two threads, but not than four.
    run_chooser(chooser, {2: 0.060, 1: 0.090}.get, 1, sequences=4)
    assert chooser.current == 2
    # Batched decoding probes too: contention seen there moves the choice as well.
    run_chooser(chooser, {2: 0.200, 1: 0.090}.get, 2 * PROBE_EVERY, sequences=4)
    assert chooser.current == 1


def test_a_runner_without_num_thread_probes_one_thread(path):
    runner = load(path)
    seen = watch_threads(runner)
    cache = runner.new_cache(PROBE_EVERY + 16)
    runner.forward([(cache, PROMPT)])
    for token in range(PROBE_EVERY):
        runner.forward([(cache, [token % 50])])
    if NumpyBackend.default_threads > 1:
        assert seen.count(1) >= 1 and seen[0] == NumpyBackend.default_threads
    fixed = load(path, num_thread=2)
    seen = watch_threads(fixed)
    cache = fixed.new_cache(PROBE_EVERY + 16)
    for token in range(PROBE_EVERY + 1):
        fixed.forward([(cache, [token % 50])])
    assert set(seen) == {min(2, NumpyBackend.default_threads)}  # a num_thread of its own is kept
