"""Structured outputs: answers held to a format while they are sampled, and model output read
back into its parts (thinking, content, tool calls).

    spec = parse_format(body.get("format"))        # None, or a checked FormatSpec (400/500 on bad input)
    constraint = Constraint(spec, tokenizer, vocab_size)   # one per sequence
    logits = constraint.mask(logits); constraint.advance(token); constraint.complete

The grammar engine is llguidance (JSON Schema → grammar → token masks). A library the API and
the scheduler call; it registers no hooks.
"""

from .constraint import Constraint
from .formats import FormatSpec, compile_schema, invalid_format, parse_format
from .output import OutputParser, Parsed
from .toolcalls import JsonScan, call_id

__all__ = [
    "Constraint",
    "FormatSpec",
    "JsonScan",
    "OutputParser",
    "Parsed",
    "call_id",
    "compile_schema",
    "invalid_format",
    "parse_format",
]
