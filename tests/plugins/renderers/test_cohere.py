"""The cohere renderer and parser against Ollama's test cases (model/renderers/cohere_test.go,
model/parsers/cohere_test.go), transcribed in tests/reference/renderers/cohere.json."""

from __future__ import annotations

import json

import pytest

from ollamakit_renderers.cohere import CohereParser, CohereRenderer
from renderer_reference import FOLDER

DATA = json.loads((FOLDER / "cohere.json").read_text())


@pytest.mark.parametrize("case", DATA["render"], ids=[c["from"] for c in DATA["render"]])
def test_render(case):
    got = CohereRenderer().render(case["messages"], case.get("tools"), case["think"])
    if "equals" in case:
        assert got == case["equals"]
    if "ends_with" in case:
        assert got.endswith(case["ends_with"])
    for part in case.get("contains", ()):
        assert part in got


@pytest.mark.parametrize("case", DATA["parse"], ids=[c["from"] for c in DATA["parse"]])
def test_parse(case):
    parser = CohereParser()
    parser.init(None, case.get("last"), case.get("think"))
    content = thinking = ""
    calls = []
    for n, chunk in enumerate(case["chunks"]):
        parsed = parser.add(chunk, n == len(case["chunks"]) - 1)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    if "content" in case:
        assert content == case["content"]
    if "thinking" in case:
        assert thinking == case["thinking"]
    if "calls" in case:
        assert [
            {
                "name": c["function"]["name"],
                "arguments": c["function"]["arguments"],
                "index": c["function"]["index"],
            }
            for c in calls
        ] == case["calls"]
    if "call_names" in case:
        assert [c["function"]["name"] for c in calls] == case["call_names"]


@pytest.mark.parametrize("chunk", DATA["streams_before_done"]["chunks"])
def test_answers_stream_before_the_end(chunk):
    parser = CohereParser()
    parser.init(None, None, None)
    parser.add(DATA["streams_before_done"]["after"], False)
    assert parser.add(chunk, False).content
