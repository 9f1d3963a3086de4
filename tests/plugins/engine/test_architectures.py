"""Every architecture the graph engine runs, on a tiny random model of it, against llama.cpp.

The fixtures (``ollamakit.testing.architectures``) are rebuilt here, byte for byte the files
llama.cpp ran on (their sha256 is recorded beside its answers). Greedy tokens must equal
llama.cpp's except where its own top-2 margin was under ``TIE_MARGIN``, and until the
continuations part, llama.cpp's top logprobs must be within ``LOGPROB_TOLERANCE`` of ours; both
run with a float32 cache. Live with llama-cpp-python when it is installed, otherwise against the
answers recorded on this machine kind (``tests/reference/llamacpp-architectures.json``).
"""

from __future__ import annotations

import importlib.util
from functools import cache, lru_cache

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend

from ollamakit.testing import architectures as fixtures
from ollamakit.testing.agreement import TIE_MARGIN, cpu
from ollamakit.testing.reference import reference_answers

LIVE = importlib.util.find_spec("llama_cpp") is not None
LOGPROB_TOLERANCE = 0.05
NAMES = sorted(fixtures.FIXTURES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("architectures")


@lru_cache(maxsize=1)
def recorded() -> dict:
    return reference_answers(fixtures.RECORDED)


@cache
def built(name: str, folder) -> str:
    return str(fixtures.build(name, folder / f"{name}.gguf"))


@lru_cache(maxsize=2)
def runner(path: str):
    return load_runner(
        path, GgmlBackend(), {"num_thread": 2, "kv_cache_type": "f32"}, with_tokenizer=False
    )


def theirs(name: str, path: str, index: int) -> dict:
    """llama.cpp's answer for run ``index`` (``fixtures.cases``): greedy ids, margins and top
    logprobs."""
    text, num_ctx = fixtures.cases(name)[index]
    if LIVE:
        steps = fixtures.llamacpp_steps(path, fixtures.prompt_ids(text), num_ctx=num_ctx)
        return {
            "greedy_ids": [s["id"] for s in steps],
            "margins": [s["margin"] for s in steps],
            "top_logprobs": [s["top"] for s in steps],
        }
    document = recorded()
    here = cpu()
    if document["cpu"]["flags"] != here["flags"] or document["cpu"]["machine"] != here["machine"]:
        pytest.fail(
            f"the recorded answers come from a {document['cpu']['model']} with {document['cpu']['flags']}; this CPU "
            f"has {here['flags']}: install llama-cpp-python to compare live"
        )
    answer = document["fixtures"][name]["answers"][index]
    assert (answer["prompt"], answer.get("num_ctx", fixtures.NUM_CTX)) == (text, num_ctx), (
        "the recorded answers are for other prompts: record them again"
    )
    return answer


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_the_file_llamacpp_ran(name, folder):
    """The rebuilt fixture is the very file the recorded answers come from."""
    assert fixtures.sha256(built(name, folder)) == recorded()["fixtures"][name]["sha256"]


def test_mxfp4_blocks_are_ggml_reference_quantizers():
    """The fixtures' MXFP4 quantizer picks ggml's codes: for each value, the code of least error
    against it, the first of equal errors (ggml's ``best_index_mxfp4``), written here directly,
    on normal values, exact ties between two codes, zeros of both signs and subnormals."""
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.standard_normal(32 * 64),
            np.round(rng.standard_normal(32 * 64) * 8) / 4,  # many values halfway between codes
            np.zeros(32),
            -np.zeros(32),
            -np.abs(rng.standard_normal(32 * 8)),
            rng.standard_normal(32 * 8) * 1e-40,
        ]
    ).astype(np.float32)
    blocks = np.frombuffer(fixtures.mxfp4(values), np.uint8).reshape(-1, 17)
    x = values.reshape(-1, 32)
    half = np.ldexp(np.float32(1), blocks[:, 0].astype(np.int32) - 128).astype(np.float32)
    errors = np.abs(fixtures.E2M1_TWICE[None, None, :] * half[:, None, None] - x[:, :, None])
    codes = np.argmin(errors, axis=2)  # the first of equal errors
    assert (blocks[:, 1:] & 15).tolist() == codes[:, :16].tolist()
    assert (blocks[:, 1:] >> 4).tolist() == codes[:, 16:].tolist()
    amax, exponents = np.abs(x).max(axis=1), blocks[:, 0].astype(np.int32)
    normal = amax > 1e-30  # ggml's exponent, floor(log2(amax)) - 2 + 127 (0 for a zero block)
    assert (exponents[normal] == np.floor(np.log2(amax[normal])) - 2 + 127).all()
    assert (exponents[amax == 0] == 0).all()


@pytest.mark.parametrize(
    "name,index", [(n, i) for n in NAMES for i in range(len(fixtures.cases(n)))]
)
def test_greedy_tokens_and_logprobs_match_llamacpp(name, index, folder):
    path = built(name, folder)
    answer = theirs(name, path, index)
    text, num_ctx = fixtures.cases(name)[index]
    ours = fixtures.ours_steps(
        runner(path), fixtures.prompt_ids(text), len(answer["greedy_ids"]), num_ctx
    )
    parted = next(
        (i for i, (a, b) in enumerate(zip(ours, answer["greedy_ids"])) if a["id"] != b), None
    )
    if parted is not None:
        margin = answer["margins"][parted]
        assert margin < TIE_MARGIN, (
            f"parts from llama.cpp at token {parted}, where its top-2 margin was {margin:.4f}"
        )
    worst = 0.0
    for step, top in zip(ours[: parted if parted is not None else None], answer["top_logprobs"]):
        for token, logprob in top:
            worst = max(worst, abs(float(step["logprobs"][token]) - logprob))
    assert worst <= LOGPROB_TOLERANCE, f"a top logprob is {worst:.4f} from llama.cpp's"


def test_most_steps_are_not_ties():
    """The fixtures' logits are spread enough that greedy steps mean something: llama.cpp's top-2
    margin reaches ``TIE_MARGIN`` on at least 90% of the steps of every fixture."""
    for name, fixture in recorded()["fixtures"].items():
        margins = [m for answer in fixture["answers"] for m in answer["margins"]]
        assert np.mean(np.asarray(margins) >= TIE_MARGIN) >= 0.9, name


@pytest.mark.parametrize("name", ["qwen3moe", "mixtral", "gpt-oss", "deepseek2", "deepseek2-lite"])
def test_experts_route_each_row_on_its_own(name, folder):
    """Two sequences in one step (their rows concatenated, each routed to its own experts) give
    what each gives alone."""
    model = runner(built(name, folder))
    a, b = fixtures.prompt_ids(fixtures.PROMPTS[0]), fixtures.prompt_ids(fixtures.PROMPTS[1])
    alone = [model.forward([(model.new_cache(64), ids)])[0] for ids in (a, b)]
    together = model.forward([(model.new_cache(64), a), (model.new_cache(64), b)])
    # deepseek2-lite's logits move by up to 1e-3 with the order of its float16 products' sums,
    # which the number of rows in a step changes; a row routed by another's choice moves them
    # by far more than that
    atol = 1e-3 if name == "deepseek2-lite" else 1e-4
    for one, both in zip(alone, together):
        np.testing.assert_allclose(both, one, atol=atol)


def test_long_rope_sequences_of_either_context_share_a_step(folder):
    """A sequence within LongRoPE's original context (short factors) and one past it (long
    factors), in one step, give what each gives alone."""
    model = runner(built("phi3-longrope", folder))
    a, b = fixtures.prompt_ids(fixtures.PROMPTS[0]), fixtures.prompt_ids(fixtures.PROMPTS[1])
    contexts = (fixtures.NUM_CTX, 2 * fixtures.NUM_CTX)
    alone = [model.forward([(model.new_cache(n), ids)])[0] for n, ids in zip(contexts, (a, b))]
    together = model.forward([(model.new_cache(n), ids) for n, ids in zip(contexts, (a, b))])
    for one, both in zip(alone, together):
        np.testing.assert_allclose(both, one, atol=1e-4)
    short = model.forward([(model.new_cache(contexts[0]), b)])[0]
    assert np.abs(short - alone[1]).max() > 0.01  # the two factor sets do differ
