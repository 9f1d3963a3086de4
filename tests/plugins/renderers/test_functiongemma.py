"""The functiongemma renderer and parser against Ollama's own test tables
(model/renderers/functiongemma_test.go, model/parsers/functiongemma_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.functiongemma import FunctionGemmaParser, FunctionGemmaRenderer
from renderer_reference import cases


@pytest.mark.parametrize("case", cases("functiongemma.json", "render"))
def test_render(case):
    assert (
        FunctionGemmaRenderer().render(case["messages"], case.get("tools"), None)
        == case["expected"]
    )


@pytest.mark.parametrize("case", cases("functiongemma.json", "parse"))
def test_parse(case):
    parser = FunctionGemmaParser()
    parser.init(case.get("tools"), None, None)
    chunks = case.get("chunks") or [""]
    content, calls = "", []
    for n, chunk in enumerate(chunks):
        parsed = parser.add(chunk, n == len(chunks) - 1)
        content += parsed.content
        calls += [
            (c["function"]["name"], c["function"]["arguments"], c["function"]["index"])
            for c in parsed.tool_calls
        ]
    want = [
        (
            c["function"].get("name", ""),
            c["function"].get("arguments") or {},
            c["function"].get("index", 0),
        )
        for c in case.get("expectedCalls") or []
    ]
    assert (content, calls) == (case.get("expectedText", ""), want)
