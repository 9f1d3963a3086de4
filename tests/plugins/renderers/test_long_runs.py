"""Every built-in parser reads a long answer in time linear in its length: a model's long run
of blank lines (held back at every token until what follows it comes), and ministral's long
call arguments (a whole file for a coding tool), are each read once, not once a token."""

from __future__ import annotations

import time

import pytest

from ollamakit import rendering

TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}]
TOKENS = 3000  # 0.05 s of CPU a parser; over 2 s when each token read the whole run again


def elapsed(parser, opening: str, token: str) -> float:
    start = time.process_time()
    parser.add(opening, False)
    for _ in range(TOKENS):
        parser.add(token, False)
    return time.process_time() - start


@pytest.mark.parametrize("name", rendering.parser_names())
@pytest.mark.parametrize("think", [None, True])
def test_a_long_run_of_blank_lines_is_read_once(name, think):
    parser = rendering.load_parser(name)
    parser.init(TOOLS, None, think)
    assert elapsed(parser, "Hello", "\n\n  ") < 0.5


def test_ministrals_long_call_arguments_are_read_once():
    parser = rendering.load_parser("ministral")
    parser.init(TOOLS, None, None)
    seconds = elapsed(parser, '[TOOL_CALLS]write[ARGS]{"text": "', "line \\n")
    assert seconds < 0.5
    parsed = parser.add('"}', True)
    assert parsed.tool_calls[0]["function"]["arguments"] == {"text": "line \n" * TOKENS}
