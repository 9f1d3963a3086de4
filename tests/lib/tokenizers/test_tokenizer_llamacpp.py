"""Real vocabularies against llama.cpp's own token ids.

``llamacpp_ids.json`` holds llama.cpp's answers (made by ``make_fixture.py``) for hard and random
texts on SmolLM2 (byte-level BPE), Gemma 3 (SentencePiece, 262k tokens), all-MiniLM (WordPiece) and
two dozen pre-tokenizer families; the reference file adds the team's greedy prompts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit.lib.tokenizers import load_tokenizer
from tokenizer_corpus import minilm_metadata, smollm_with_digit_tokens

from ollamakit.testing import models
from ollamakit.testing.reference import reference_answers

pytestmark = pytest.mark.real_model

HERE = Path(__file__).parent
FIXTURE = json.loads((HERE / "llamacpp_ids.json").read_text(encoding="utf-8"))
REFERENCE = reference_answers("llamacpp-greedy.json")["models"]


@pytest.fixture(scope="module")
def smollm_metadata():
    return GGUFFile.open(models.smollm2_q4_1()).metadata


@pytest.fixture(scope="module")
def gemma_metadata():
    return GGUFFile.open(models.gemma3_270m()).metadata


@pytest.fixture(scope="module")
def tokenizers(smollm_metadata, gemma_metadata):
    return {
        "smollm2": load_tokenizer(smollm_metadata),
        "gemma3": load_tokenizer(gemma_metadata),
        "minilm": load_tokenizer(minilm_metadata(models.all_minilm_l6_v2())),
    }


def _mismatches(tok, cases):
    wrong = []
    for case in cases:
        for mode, add_special, parse_special in (
            ("with_bos_special", True, True),
            ("plain", False, False),
        ):
            got = tok.encode(case["text"], add_special=add_special, parse_special=parse_special)
            if got != case[mode]:
                wrong.append((case["text"][:60], mode, got[:12], case[mode][:12]))
    return wrong


@pytest.mark.parametrize("model", ["smollm2", "gemma3", "minilm"])
def test_fixture_ids_match_llamacpp(tokenizers, model):
    cases = FIXTURE["models"][model]
    assert len(cases) > 90
    assert _mismatches(tokenizers[model], cases) == []


@pytest.mark.parametrize(
    "model,file",
    [("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), ("gemma3", "gemma-3-270m-q4_k_m.gguf")],
)
def test_shared_reference(tokenizers, model, file):
    tok = tokenizers[model]
    assert _mismatches(tok, REFERENCE[file]["tokenize"]) == []
    for case in REFERENCE[file]["greedy"]:
        assert tok.encode(case["prompt"]) == case["prompt_ids"]
        assert tok.decode(case["greedy_ids"]) == case["greedy_text"]


def test_pre_tokenizer_families_match_llamacpp(smollm_metadata):
    base = smollm_with_digit_tokens(smollm_metadata)
    failures = {}
    for name, cases in FIXTURE["pre"].items():
        wrong = _mismatches(load_tokenizer({**base, "tokenizer.ggml.pre": name}), cases)
        if wrong:
            failures[name] = wrong[:2]
    assert failures == {}
    assert len(FIXTURE["pre"]) >= 20


def test_special_ids_as_llamacpp_infers_them(tokenizers):
    smol, gemma, minilm = tokenizers["smollm2"], tokenizers["gemma3"], tokenizers["minilm"]
    assert (smol.bos_id, smol.eos_id, smol.add_bos) == (1, 2, False)
    # <|endoftext|>, <|im_end|> and the FIM repository token <reponame>
    assert smol.eog_ids == {0, 2, 4}
    assert (gemma.bos_id, gemma.eos_id, gemma.add_bos) == (2, 1, True)
    assert gemma.eog_ids == {1, 106, 212}  # <eos>, <end_of_turn>, </s>
    assert gemma.is_control(106) and not gemma.is_control(107)
    assert minilm.encode("hello")[0] == 101 and minilm.encode("hello")[-1] == 102


def test_decoding_real_vocabularies(tokenizers):
    gemma, smol = tokenizers["gemma3"], tokenizers["smollm2"]
    text = "Grüße, 世界! 😀 <b>x</b>\n\tend"
    for tok in (gemma, smol):
        assert tok.decode(tok.encode(text, add_special=False)) == text
    # Gemma spells the emoji with byte tokens when it has no token for it; pieces are raw bytes
    ids = gemma.encode("\U0001fae8", add_special=False)
    assert b"".join(gemma.token_to_piece(i) for i in ids) == "\U0001fae8".encode()
    assert (
        gemma.token_to_piece(gemma.bos_id) == b""
        and gemma.token_to_piece(gemma.bos_id, special=True) == b"<bos>"
    )
    assert smol.token_to_piece(2, special=True) == b"<|im_end|>"


def test_speed_and_load_time(gemma_metadata, smollm_metadata):
    text = Path(__file__).with_name("tokenizer_corpus.py").read_text(encoding="utf-8") * 3
    for metadata in (gemma_metadata, smollm_metadata):
        start = time.perf_counter()
        tok = load_tokenizer(metadata)
        load = time.perf_counter() - start
        assert load < 2.0  # about 0.3 s for Gemma's 262k tokens on an idle core
        start = time.perf_counter()
        ids = tok.encode(text)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        tok.encode(text)
        warm = time.perf_counter() - start
        # generous bounds for a shared machine; typical: 5-15 ms cold, under 2 ms warm per 1k tokens
        assert cold / len(ids) * 1000 < 0.1
        assert warm / len(ids) * 1000 < 0.02
