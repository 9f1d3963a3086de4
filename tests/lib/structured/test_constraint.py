"""Constrained decoding without a model: random logits, masked by the format, must still give
an answer that parses and validates, for every schema and seed."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from ollamakit.errors import BadRequest, OllamaError
from ollamakit_scheduler.testing import FakeTokenizer, VOCAB
from ollamakit.lib.structured import Constraint, parse_format

from structured_schemas import SCHEMAS, UNENFORCEABLE

MAX_STEPS = 600


def sample_answer(constraint: Constraint, tokenizer, rng, size: int, bias=None) -> tuple[str, int]:
    """Sample among the allowed tokens (random logits, plus ``bias``) until the format is
    complete or an end-of-generation token is drawn; the text and the number of tokens."""
    pieces = []
    for step in range(MAX_STEPS):
        logits = rng.standard_normal(size).astype(np.float32)
        if bias is not None:
            logits += bias
        logits = constraint.mask(logits)
        token = int(np.argmax(logits + rng.gumbel(size=size).astype(np.float32)))
        if token in tokenizer.eog_ids:
            assert constraint.accepting, "end of generation was allowed before the answer was whole"
            break
        constraint.advance(token)
        pieces.append(tokenizer.token_to_piece(token))
        if constraint.complete:
            break
    else:
        pytest.fail("the answer did not end")
    return b"".join(pieces).decode("utf-8"), step + 1


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_random_logits_always_give_a_valid_answer_bytes(name):
    schema = SCHEMAS[name]
    tokenizer = FakeTokenizer()
    spec = parse_format(schema)
    for seed in range(4):
        text, _ = sample_answer(
            Constraint(spec, tokenizer, VOCAB), tokenizer, np.random.default_rng(seed), VOCAB
        )
        jsonschema.validate(json.loads(text), schema)


def test_json_format_gives_an_object():
    """Any object at all: closing brackets and quotes are favoured so a random walk ends."""
    tokenizer = FakeTokenizer()
    bias = np.zeros(VOCAB, np.float32)
    bias[list(b'}]"')] = 4.0
    for seed in range(5):
        text, _ = sample_answer(
            Constraint(parse_format("json"), tokenizer, VOCAB),
            tokenizer,
            np.random.default_rng(seed),
            VOCAB,
            bias,
        )
        assert isinstance(json.loads(text), dict)


def test_mask_allows_only_valid_first_bytes():
    tokenizer = FakeTokenizer()
    constraint = Constraint(parse_format(SCHEMAS["top_level_array"]), tokenizer, VOCAB)
    allowed = np.flatnonzero(np.isfinite(constraint.mask(np.zeros(VOCAB, np.float32))))
    assert [bytes([t]) for t in allowed] == [b"["]


def test_end_of_generation_only_when_whole():
    tokenizer = FakeTokenizer()
    constraint = Constraint(parse_format(SCHEMAS["boolean_flag"]), tokenizer, VOCAB)
    eos = sorted(tokenizer.eog_ids)
    for byte in b'{"ok": true':
        assert not np.isfinite(constraint.mask(np.zeros(VOCAB, np.float32))[eos]).any()
        constraint.advance(byte)
    constraint.advance(ord("}"))
    assert constraint.complete and constraint.accepting


def test_a_forbidden_token_is_an_error_not_a_silent_pass():
    tokenizer = FakeTokenizer()
    constraint = Constraint(parse_format("json"), tokenizer, VOCAB)
    with pytest.raises(OllamaError, match="not allowed"):
        constraint.advance(ord("x"))


def test_wider_logits_than_vocabulary_are_masked():
    tokenizer = FakeTokenizer()
    constraint = Constraint(parse_format("json"), tokenizer, VOCAB + 12)
    masked = constraint.mask(np.zeros(VOCAB + 12, np.float32))
    assert masked.shape == (VOCAB + 12,) and not np.isfinite(masked[VOCAB:]).any()


@pytest.mark.parametrize("value", ["xml", "JSON", 5, ["json"], True])
def test_invalid_format_is_a_400_in_ollamas_words(value):
    with pytest.raises(OllamaError) as caught:
        parse_format(value)
    assert caught.value.status == 400
    assert caught.value.message == (
        f'invalid format: {json.dumps(json.dumps(value))}; expected "json" or a valid JSON Schema object'
    )


@pytest.mark.parametrize("value", [None, ""])
def test_no_format(value):
    assert parse_format(value) is None


@pytest.mark.parametrize("name", sorted(UNENFORCEABLE))
def test_unenforceable_schema_is_a_400(name):
    with pytest.raises(BadRequest, match="format schema cannot be enforced"):
        parse_format(UNENFORCEABLE[name])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"next": {"$ref": "#"}}},  # the property may be left out
        {"type": "array", "items": {"$ref": "#"}},  # the array may be empty
        {"anyOf": [{"type": "array", "items": {"$ref": "#"}, "minItems": 1}, {"type": "null"}]},
        {"type": ["array", "null"], "items": {"$ref": "#"}, "minItems": 1},
    ],
)
def test_a_recursive_schema_with_a_way_out_is_enforced(schema):
    tokenizer = FakeTokenizer()
    rng = np.random.default_rng(0)
    bias = np.zeros(VOCAB, np.float32)
    bias[[ord("]"), ord("}"), ord("n")]] = 4.0  # lean towards closing, so the answer ends soon
    text, _ = sample_answer(
        Constraint(parse_format(schema), tokenizer, VOCAB), tokenizer, rng, VOCAB, bias
    )
    jsonschema.validate(json.loads(text), schema)


def test_the_loop_check_is_linear_in_the_schema():
    # A chain of 20,000 $defs that ends in a string: finite, and found so without recursion.
    from ollamakit.lib.structured.finite import has_finite_value

    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(20_000)}
    defs["d20000"] = {"type": "string"}
    assert has_finite_value({"$defs": defs, "$ref": "#/$defs/d0"})
    defs["d20000"] = {"$ref": "#/$defs/d0"}
    assert not has_finite_value({"$defs": defs, "$ref": "#/$defs/d0"})


def test_thinking_preamble_frees_text_until_the_closing_tag():
    tokenizer = FakeTokenizer()
    spec = parse_format(SCHEMAS["boolean_flag"]).with_preamble("</think>")
    constraint = Constraint(spec, tokenizer, VOCAB)
    for byte in b"anything {at all}</think>\n":
        assert np.isfinite(constraint.mask(np.zeros(VOCAB, np.float32))[byte])
        constraint.advance(byte)
    allowed = np.flatnonzero(np.isfinite(constraint.mask(np.zeros(VOCAB, np.float32))))
    assert ord("{") in allowed and ord("x") not in allowed


@pytest.mark.real_model
def test_random_logits_with_a_real_vocabulary():
    """SmolLM2's 49k byte-level BPE tokens: multi-byte tokens must never overshoot the format."""
    from ollamakit.lib.gguf.reader import GGUFFile
    from ollamakit.lib.tokenizers import load_tokenizer

    from ollamakit.testing import models

    with GGUFFile.open(models.smollm2_q4_1()) as gguf:
        tokenizer = load_tokenizer(gguf.metadata)
    size = tokenizer.vocab_size
    for name, schema in sorted(SCHEMAS.items()):
        spec = parse_format(schema)
        for seed in range(2):
            text, _ = sample_answer(
                Constraint(spec, tokenizer, size), tokenizer, np.random.default_rng(seed), size
            )
            jsonschema.validate(json.loads(text), schema)
