"""A context shift on phi3's LongRoPE: the kept keys are re-roped with the factor set the
sequence runs with (the short set within the original context, the long one past it), as
llama.cpp's shift re-ropes them, and generation goes on as llama.cpp's does after the same shift
(``tests/reference/llamacpp-longrope-shift.json``, by ``record_longrope_shift.py``).

llama.cpp re-ropes every cached key, the kept prefix by zero positions, and rope multiplies
what it rotates by LongRoPE's attention factor: after a shift every key is scaled by it once
more. That is llama.cpp's shift, not a fresh evaluation of the kept tokens (which a model of
one layer would otherwise equal), and it is what the engine does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend

from ollamakit.testing import architectures as fixtures
from ollamakit.testing.agreement import TIE_MARGIN, cpu
from ollamakit.testing.reference import reference_answers

RECORDED = "llamacpp-longrope-shift.json"
LOGPROB_TOLERANCE = 0.05


@lru_cache(maxsize=1)
def recorded() -> dict:
    document = reference_answers(RECORDED)
    here = cpu()
    if document["cpu"]["flags"] != here["flags"] or document["cpu"]["machine"] != here["machine"]:
        pytest.fail(
            f"the recorded answers come from a {document['cpu']['model']} with "
            f"{document['cpu']['flags']}; this CPU has {here['flags']}: record them again "
            f"with record_longrope_shift.py"
        )
    return document


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    document = recorded()
    path = fixtures.build(document["fixture"], tmp_path_factory.mktemp("shift") / "model.gguf")
    assert fixtures.sha256(path) == document["sha256"], "not the file llama.cpp ran"
    loaded = load_runner(
        str(path), GgmlBackend(), {"num_thread": 2, "kv_cache_type": "f32"}, with_tokenizer=False
    )
    yield loaded
    loaded.close()


def shifted_steps(runner, num_ctx: int, factors=None) -> tuple[int, list[dict]]:
    """The prompt's greedy next token, then the greedy steps after the recorded shift; the
    kept keys re-roped with ``factors`` (a function of the context) instead of the model's."""
    document = recorded()
    ids = fixtures.prompt_ids(document["prompt"])
    cache = runner.new_cache(num_ctx)
    first = int(np.argmax(runner.forward([(cache, ids)])[0]))
    model = runner.model
    own = model.factors
    if factors is not None:
        model.factors = factors
    try:
        assert cache.shift(document["keep"], document["discard"])
    finally:
        model.factors = own
    assert cache.n_past == len(ids) - document["discard"]
    steps, token = [], first
    for _ in range(len(document["answers"][0]["greedy_ids"])):
        step = fixtures._step(runner.forward([(cache, [token])])[0])
        steps.append(step)
        token = step["id"]
    return first, steps


def parting(ours: list[dict], answer: dict) -> tuple[int | None, float]:
    """Where our greedy tokens part from llama.cpp's (None: nowhere), and the largest
    difference of a top logprob before that."""
    parted = next(
        (i for i, (a, b) in enumerate(zip(ours, answer["greedy_ids"])) if a["id"] != b), None
    )
    worst = max(
        (
            abs(float(step["logprobs"][token]) - logprob)
            for step, top in zip(ours[:parted], answer["top_logprobs"])
            for token, logprob in top
        ),
        default=0.0,
    )
    return parted, worst


@pytest.mark.parametrize("index", [0, 1], ids=["short-factors", "long-factors"])
def test_generation_after_a_shift_is_llamacpps(runner, index):
    answer = recorded()["answers"][index]
    assert runner.model.factors(answer["num_ctx"]) == (
        runner.model.t.rope_short if answer["num_ctx"] <= 256 else runner.model.t.rope_long
    )
    first, ours = shifted_steps(runner, answer["num_ctx"])
    assert first == answer["first_id"]
    parted, worst = parting(ours, answer)
    if parted is not None:
        assert answer["margins"][parted] < TIE_MARGIN, f"parts from llama.cpp at {parted}"
    assert worst <= LOGPROB_TOLERANCE, f"a top logprob is {worst:.4f} from llama.cpp's"


@pytest.mark.parametrize("index", [0, 1], ids=["short-factors", "long-factors"])
def test_the_other_factor_set_would_part_from_llamacpp(runner, index):
    """The shift's factor set matters: re-roped with the other one, the same cache parts from
    llama.cpp at once."""
    answer = recorded()["answers"][index]
    model = runner.model
    swap = {model.t.rope_long: model.t.rope_short, model.t.rope_short: model.t.rope_long}
    own = model.factors
    _, ours = shifted_steps(runner, answer["num_ctx"], factors=lambda n: swap[own(n)])
    parted, worst = parting(ours, answer)
    assert parted is not None and parted < 3 or worst > 10 * LOGPROB_TOLERANCE


def test_the_kept_prefix_is_rescaled_as_llamacpp_rescales_it(runner):
    """Only the moved keys re-roped (the prefix left at its one scaling) parts from llama.cpp:
    its shift scales the prefix by the attention factor too."""
    answer = recorded()["answers"][1]
    rotate = runner._rotate

    def moved_only(cache, runs, delta):
        if delta:
            rotate(cache, runs, delta)

    runner._rotate = moved_only
    try:
        assert runner.model.rope_magnitude(False) == pytest.approx(np.sqrt(1.25))
        _, ours = shifted_steps(runner, answer["num_ctx"])
    finally:
        runner._rotate = rotate
    parted, worst = parting(ours, answer)
    assert parted is not None or worst > 4 * LOGPROB_TOLERANCE
