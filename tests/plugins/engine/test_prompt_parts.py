"""Long prompts on the CPU: the last layer carries only the rows the caller reads, and a prompt
step of ``SPLIT_PROMPT_ROWS`` rows or more runs as two parts on two threads (model.py,
``Transformer.step_in_two``). Neither may change what the model computes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ollamakit_engine import runner as runner_module
from ollamakit_engine.model import Segment

from .tiny_models import VOCAB, load, reference_logits, write_model

LONG = [
    int(t)
    for t in np.random.default_rng(7).integers(0, VOCAB, runner_module.SPLIT_PROMPT_ROWS + 37)
]
NUM_CTX = len(LONG) + 8

MODELS = {
    "llama": dict(arch="llama"),
    # sliding-window layers keep a ring of 132 rows here, which both parts write while they run
    "gemma3": dict(arch="gemma3", n_layers=3, n_heads=4, n_kv_heads=1, head_dim=32, window=4),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("parts") / f"{request.param}.gguf"
    meta, tensors = write_model(path, **MODELS[request.param])
    return path, meta, tensors


def count_splits(runner, monkeypatch) -> list:
    calls = []
    step_in_two = runner.model.step_in_two

    def counted(segment):
        calls.append(len(segment.tokens))
        return step_in_two(segment)

    monkeypatch.setattr(runner.model, "step_in_two", counted)
    return calls


def test_the_last_row_alone_equals_the_whole_step(tiny):
    path, _, _ = tiny
    runner = load(path)
    prompts = [[5, 17, 3, 88, 42, 9], [1, 2, 3]]
    whole_caches, last_caches = (
        [runner.new_cache(16) for _ in prompts],
        [runner.new_cache(16) for _ in prompts],
    )

    def segments(caches):
        rows, out = 0, []
        for cache, tokens in zip(caches, prompts):
            out.append(Segment(cache, tokens, 0, slice(rows, rows + len(tokens))))
            rows += len(tokens)
        return out

    whole = runner.model.step(segments(whole_caches)).copy()
    last = runner.model.step(segments(last_caches), last_rows_only=True)
    np.testing.assert_allclose(last, whole[[5, 8]], atol=1e-5)
    for a, b in zip(whole_caches, last_caches):  # every row's keys and values were still written
        assert a.n_past == b.n_past
        for layer_a, layer_b in zip(a.layers, b.layers):
            np.testing.assert_array_equal(layer_a.keys[:, : a.n_past], layer_b.keys[:, : b.n_past])


def test_a_long_prompt_in_two_parts_matches_one_step_and_the_reference(tiny, monkeypatch):
    path, meta, tensors = tiny
    one = load(path, num_thread=1, num_batch=len(LONG))
    two = load(path, num_thread=2, num_batch=len(LONG))
    splits = count_splits(two, monkeypatch)
    caches = {name: runner.new_cache(NUM_CTX) for name, runner in (("one", one), ("two", two))}
    logits = {
        "one": one.forward([(caches["one"], LONG)])[0],
        "two": two.forward([(caches["two"], LONG)])[0],
    }
    assert splits == [len(LONG)]
    np.testing.assert_allclose(logits["two"], logits["one"], atol=1e-5)
    np.testing.assert_allclose(
        logits["two"], reference_logits(meta, tensors, LONG)[-1], atol=2e-4, rtol=1e-4
    )
    assert caches["two"].n_past == len(LONG)
    # the cache both parts wrote serves the next tokens as the single step's does
    for token in (3, 60):
        np.testing.assert_allclose(
            two.forward([(caches["two"], [token])])[0],
            one.forward([(caches["one"], [token])])[0],
            atol=1e-5,
        )


def test_short_prompts_and_one_thread_run_in_one_step(tiny, monkeypatch):
    path, _, _ = tiny
    two = load(path, num_thread=2)
    one = load(path, num_thread=1)
    splits = count_splits(two, monkeypatch) + count_splits(one, monkeypatch)
    two.forward([(two.new_cache(NUM_CTX), LONG[: runner_module.SPLIT_PROMPT_ROWS - 1])])
    one.forward([(one.new_cache(NUM_CTX), LONG)])
    assert splits == []


@pytest.mark.parametrize("failing", ["helper", "caller"])
def test_a_part_that_fails_raises_its_error_without_hanging(tiny, failing):
    path, _, _ = tiny
    runner = load(path, num_thread=2)
    activation = runner.ops.gated_activation

    def broken(gate, up, kind):
        on_helper = threading.current_thread().name == "ollamakit-prompt-part"
        if on_helper == (failing == "helper"):
            raise RuntimeError(f"the {failing} part failed")
        return activation(gate, up, kind)

    runner.ops.gated_activation = broken
    outcome = []

    def run():
        try:
            runner.forward([(runner.new_cache(NUM_CTX), LONG)])
        except RuntimeError as error:
            outcome.append(str(error))

    caller = threading.Thread(target=run)
    caller.start()
    caller.join(timeout=120)
    assert not caller.is_alive()
    assert outcome == [f"the {failing} part failed"]
