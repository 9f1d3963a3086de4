"""The qwen3 and qwen3-thinking parsers against Ollama's test cases (model/parsers/qwen3_test.go,
transcribed in tests/reference/renderers/qwen3.json)."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from renderer_reference import FOLDER

CASES = json.loads((FOLDER / "qwen3.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["from"] for c in CASES])
def test_qwen3_parser(case):
    parser = rendering.load_parser(case["parser"])
    parser.init(None, None, case["think"])
    for n, step in enumerate(case["steps"]):
        if case.get("reinit_before_last_step") and n == len(case["steps"]) - 1:
            parser.init(None, None, case["think"])
        parsed = parser.add(step["input"], step["done"])
        for key in ("content", "thinking"):
            if key in step:
                assert getattr(parsed, key) == step[key], (n, key)
        if "calls" in step:
            got = [
                {
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                    "index": c["function"]["index"],
                }
                for c in parsed.tool_calls
            ]
            assert got == step["calls"], n


def test_capabilities():
    assert not rendering.load_parser("qwen3").has_thinking_support
    assert rendering.load_parser("qwen3-thinking").has_thinking_support
    assert rendering.load_parser("qwen3").has_tool_support
