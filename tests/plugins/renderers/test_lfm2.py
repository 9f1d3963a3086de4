"""The lfm2 and lfm2-thinking renderers and parsers against Ollama's own test tables
(model/renderers/lfm2_test.go, model/parsers/lfm2_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.lfm2 import (
    LFM2Parser,
    LFM2Renderer,
    LFM2ThinkingParser,
    LFM2ThinkingRenderer,
    parse_calls,
)
from renderer_reference import cases


def think_of(value):
    return value.get("value") if isinstance(value, dict) else value


@pytest.mark.parametrize("case", cases("lfm2.json", "render"))
def test_render(case):
    settings = case.get("renderer") or {}
    renderer = LFM2ThinkingRenderer() if settings.get("IsThinking") else LFM2Renderer()
    renderer.image_tags = bool(settings.get("useImgTags"))  # as the test builds it
    messages = [
        {**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m
        for m in case["messages"] or []
    ]
    assert (
        renderer.render(messages, case.get("tools"), think_of(case.get("thinkValue")))
        == case["expected"]
    )


def comparable(calls) -> list:
    return [
        (c["function"].get("name", ""), c["function"].get("arguments") or {}) for c in calls or []
    ]


def run(case, pieces, tools=()):
    parser = LFM2ThinkingParser() if case.get("hasThinking") else LFM2Parser()
    parser.init(list(tools), None, bool(case.get("hasThinking")))
    content = thinking = ""
    calls = []
    for n, piece in enumerate(pieces):
        parsed = parser.add(piece, n == len(pieces) - 1)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    return content, thinking, calls


@pytest.mark.parametrize("table", ["parse", "edge_cases"])
def test_parse(table):
    for param in cases("lfm2.json", table):
        case = param.values[0]
        content, thinking, calls = run(case, [case["input"]])
        assert (content, thinking) == (
            case.get("expectedContent", ""),
            case.get("expectedThinking", ""),
        ), case["name"]
        assert comparable(calls) == comparable(case.get("expectedCalls")), case["name"]


@pytest.mark.parametrize("case", cases("lfm2.json", "streaming"))
def test_streaming(case):
    content, thinking, calls = run(case, case["chunks"])
    assert (content, thinking) == (
        case.get("expectedContent", ""),
        case.get("expectedThinking", ""),
    )
    assert comparable(calls) == comparable(case.get("expectedCalls"))


@pytest.mark.parametrize("table", ["call", "calls"])
def test_call_text(table):
    for param in cases("lfm2.json", table):
        case = param.values[0]
        if case.get("expectError"):
            with pytest.raises(ValueError):
                parse_calls(case["content"])
            continue
        got = [{"function": c} for c in parse_calls(case["content"])]
        want = case["expected"] if isinstance(case["expected"], list) else [case["expected"]]
        assert comparable(got[: len(want)] if table == "call" else got) == comparable(want), case[
            "name"
        ]


BASH = [{"type": "function", "function": {"name": "bash"}}]
WEATHER = [{"type": "function", "function": {"name": "get_weather"}}]


@pytest.mark.parametrize("case", cases("lfm2.json", "image_placeholders"))
def test_image_placeholders_stay_content(case):
    assert run({}, [case["input"]], BASH) == (case["input"], "", [])


def test_a_bare_call_list_is_a_call_of_a_known_tool_only():
    # TestLFM2Parser_BareToolCallFallback, TestLFM2Parser_BareUnknownToolCallDoesNotParse
    content, thinking, calls = run({}, ['[get_weather(location="Paris")]'], WEATHER)
    assert (content, thinking, comparable(calls)) == (
        "",
        "",
        [("get_weather", {"location": "Paris"})],
    )
    assert run({}, ['[unknown_tool(location="Paris")]'], WEATHER) == (
        '[unknown_tool(location="Paris")]',
        "",
        [],
    )
