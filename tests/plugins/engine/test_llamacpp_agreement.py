"""The default engine's greedy continuations against llama.cpp's, on this machine.

Live with llama-cpp-python when it is installed; otherwise against answers recorded on this
machine kind, which apply only where this CPU has the recorded CPU's kernel flags (see
``ollamakit.testing.agreement``). A continuation may part from llama.cpp's only where llama.cpp's
own top-2 margin was below ``TIE_MARGIN``.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend

from ollamakit.testing import agreement
from ollamakit.testing.reference import reference_answers

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

LIVE = importlib.util.find_spec("llama_cpp") is not None
CASES = agreement.CASES
# Qwen2.5-Coder-1.5B's 4k prompt takes minutes on two cores: only when asked (-m large_model)
LARGE_MODELS = {"qwen25_coder_1_5b"}
SHIFT_CASES = sorted(name for name in CASES if CASES[name].num_ctx == agreement.SHIFT_NUM_CTX)


def parameters():
    for name in sorted(n for n in CASES if CASES[n].num_ctx != agreement.SHIFT_NUM_CTX):
        marks = [pytest.mark.large_model] if CASES[name].model in LARGE_MODELS else []
        for index in range(len(CASES[name].prompts)):
            yield pytest.param(name, index, marks=marks, id=f"{name}-{index}")


@lru_cache(maxsize=2)
def runner(model: str, cache_type: str, adapter: str | None):
    adapters = [adapter] if adapter else []
    return load_runner(
        model,
        GgmlBackend(),
        {"num_thread": 2, "kv_cache_type": cache_type},
        with_tokenizer=False,
        adapters=adapters,
    )


def reference(name: str, index: int):
    """(prompt ids, llama.cpp's greedy ids, its margins) for one prompt."""
    case = CASES[name]
    if LIVE:
        path, adapter = case.paths()
        ids = agreement.llamacpp_tokenize(path, case.prompts[index])
        return (
            ids,
            *agreement.llamacpp_greedy(
                path, ids, cache_type=case.cache_type, adapter=adapter, num_ctx=case.num_ctx
            ),
        )
    recorded = reference_answers(agreement.RECORDED)
    here = agreement.cpu()
    if recorded["cpu"]["flags"] != here["flags"] or recorded["cpu"]["machine"] != here["machine"]:
        pytest.fail(
            f"the recorded answers come from a {recorded['cpu']['model']} with {recorded['cpu']['flags']}; this CPU "
            f"has {here['flags']}, whose llama.cpp rounds differently: install llama-cpp-python=="
            f"{agreement.LLAMA_CPP_VERSION} to compare live"
        )
    if name not in recorded["models"]:
        pytest.fail(
            f"no recorded answers for {name}: python -m ollamakit.testing.agreement "
            f"tests/reference/{agreement.RECORDED} {name} (with llama-cpp-python installed)"
        )
    answer = recorded["models"][name][index]
    assert answer["prompt"] == case.prompts[index], (
        "the recorded answers are for other prompts: record them again"
    )
    return answer["prompt_ids"], answer["greedy_ids"], answer["margins"]


@pytest.mark.parametrize("name,index", list(parameters()))
def test_greedy_continuations_match_llamacpp(name, index):
    prompt_ids, theirs, margins = reference(name, index)
    case = CASES[name]
    model, adapter = case.paths()
    ours = agreement.ours_greedy(
        runner(model, case.cache_type, adapter), prompt_ids, len(theirs), case.num_ctx
    )
    step, margin = agreement.parting(ours, theirs, margins)
    assert step is None or margin < agreement.TIE_MARGIN, (
        f"parts from llama.cpp at token {step}, where llama.cpp's top-2 margin was {margin:.4f}"
    )


@pytest.mark.parametrize("name", SHIFT_CASES)
def test_a_full_window_shifts_as_llamacpps(name):
    """A prompt that nearly fills num_ctx, then 64 greedy tokens: the window fills early in the
    continuation and shifts once (half of what follows num_keep dropped, the rest moved down and
    re-roped), and the tokens after the shift are llama.cpp's after the same shift. The same
    prompt, copied into a second cache whose shift leaves the moved keys at their old positions
    (moved down, not re-roped), parts from llama.cpp where llama.cpp was sure: the case sees a
    wrong shift."""
    case = CASES[name]
    prompt_ids, theirs, margins = reference(name, 0)
    filled_at = case.num_ctx - len(prompt_ids)
    _, discard = agreement.shift_plan(case.num_ctx)
    assert 0 < filled_at < len(theirs) // 2, "the window must fill early in the continuation"
    assert case.num_ctx - discard + len(theirs) - filled_at <= case.num_ctx, "one shift only"
    model, _ = case.paths()
    ours = runner(model, case.cache_type, None)
    cache = ours.new_cache(case.num_ctx)
    logits = ours.forward([(cache, prompt_ids)])[0]
    unrotated = ours.new_cache(case.num_ctx)
    assert unrotated.copy_prefix(cache, len(prompt_ids))
    unrotated._rotate = lambda cache, runs, delta: None

    step, margin = agreement.parting(
        agreement.ours_continuation(ours, cache, logits, len(theirs), case.num_ctx),
        theirs,
        margins,
    )
    assert step is None or margin < agreement.TIE_MARGIN, (
        f"parts from llama.cpp at token {step}, where llama.cpp's top-2 margin was {margin:.4f}"
    )
    step, margin = agreement.parting(
        agreement.ours_continuation(ours, unrotated, logits, len(theirs), case.num_ctx),
        theirs,
        margins,
    )
    assert step is not None and step >= filled_at and margin >= agreement.TIE_MARGIN


def test_gemma3_rings_are_llamacpp_swa_cache_to_the_logit():
    """Past Gemma 3's window its sliding-window layers run in rings laid out cell for cell as
    llama.cpp's SWA cache: the same sums in the same order, so every step's top-2 margin is
    llama.cpp's to the recorded digits, not just the greedy token."""
    import numpy as np

    prompt_ids, theirs, margins = reference("gemma3/window", 0)
    case = CASES["gemma3/window"]
    model, _ = case.paths()
    ours = runner(model, case.cache_type, None)
    cache = ours.new_cache(case.num_ctx)
    assert cache.ring == 1024 and len(prompt_ids) > cache.ring
    logits = ours.forward([(cache, prompt_ids)])[0]
    for step, token in enumerate(theirs):
        second, first = np.sort(logits)[-2:]
        assert abs(float(first - second) - margins[step]) < 1e-5, f"step {step}"
        logits = ours.forward([(cache, [token])])[0]


def test_the_engine_runs_ggml_built_for_this_cpu():
    """The native build is what makes the products llama.cpp's on this CPU (scripts/test.sh
    makes it); the prebuilt wheel's AVX2 kernels round differently on an AVX-512 machine."""
    from ollamakit.lib.ggml import lib

    assert lib.load().origin.startswith("built for this CPU")
