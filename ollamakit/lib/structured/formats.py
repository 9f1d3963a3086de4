"""The ``format`` request field: ``"json"`` or a JSON Schema, checked and compiled into a grammar
before anything is scheduled, so a schema we cannot enforce is a 400 and never a silently
unconstrained answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import llguidance

from ollamakit.errors import BadRequest

from .closed_schema import close_schema
from .finite import has_finite_value

# ``"json"`` asks for any JSON object, as Ollama's JSON grammar does.
ANY_OBJECT = {"type": "object"}

# One layout, ``{"a": 1, "b": [2, 3]}`` (Python's ``json.dumps`` style): free whitespace lets a
# small model pad or indent for many tokens, and a pretty-printed answer costs about twice the
# tokens of this one for the same content. Every answer in this layout is one llama.cpp's grammar
# also admits (its whitespace rule allows one space there). ``oneOf`` is read as ``anyOf``, as
# llama.cpp reads it.
JSON_OPTIONS: Any = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "coerce_one_of": True,
}

MAX_SCHEMA_BYTES = 1 << 20


@dataclass(frozen=True)
class FormatSpec:
    """A checked ``format``: the schema it stands for (closed as llama.cpp reads it, see
    ``closed_schema``) and the engine's grammar for it."""

    schema: dict
    grammar: str

    def with_preamble(self, closing_tag: str) -> FormatSpec:
        """The same format after free text that ends with ``closing_tag`` (a thinking model
        thinks unconstrained, then answers in the format)."""
        lark = (
            "start: thinking gap? answer\n"
            f"thinking[stop={json.dumps(closing_tag)}]: /(.|\\n)*/\n"
            "gap: /[ \\t\\n]{1,8}/\n"
            f"answer: %json {json.dumps({**self.schema, 'x-guidance': JSON_OPTIONS})}\n"
        )
        return FormatSpec(self.schema, _checked(llguidance.LLMatcher.grammar_from_lark(lark)))


def invalid_format(value) -> BadRequest:
    # Ollama's words; it answers 500, but the mistake is the client's.
    raw = json.dumps(value, ensure_ascii=False)
    return BadRequest(
        f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object'
    )


def _checked(grammar: str) -> str:
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if error and not error.startswith("WARNING"):
        raise BadRequest(f"format schema cannot be enforced: {error.strip()}")
    return grammar


def compile_schema(schema: dict) -> FormatSpec:
    """The grammar for a JSON Schema object, with llama.cpp's object semantics (only the
    declared properties, in its order, when ``additionalProperties`` is absent); 400 with the
    reason when it cannot be enforced (an unknown type, a keyword such as ``not`` the engine
    does not implement, a broken $ref)."""
    try:
        text = json.dumps(schema)
    except RecursionError:
        raise BadRequest("format schema cannot be enforced: it is nested too deeply") from None
    if len(text) > MAX_SCHEMA_BYTES:
        raise BadRequest("format schema is too large")
    if isinstance(schema.get("x-guidance"), dict):
        raise BadRequest("format schema cannot be enforced: x-guidance is not allowed")
    schema = close_schema(schema)
    text = json.dumps(schema)
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(text, overrides=JSON_OPTIONS)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"format schema cannot be enforced: {exc}") from None
    grammar = _checked(grammar)
    if not has_finite_value(schema):
        raise BadRequest(
            "format schema cannot be enforced: no finite value satisfies it (a $ref loop with no way out)"
        )
    return FormatSpec(schema, grammar)


def parse_format(value) -> FormatSpec | None:
    """``None`` for no format (absent, null or ""); the compiled format otherwise. Another
    string or a non-object is a 400 ``invalid format``, in Ollama's words."""
    if value is None or value == "":
        return None
    if value == "json":
        return compile_schema(ANY_OBJECT)
    if isinstance(value, dict):
        return compile_schema(value)
    raise invalid_format(value)
