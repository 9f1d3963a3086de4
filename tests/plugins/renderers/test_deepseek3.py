"""The deepseek3.1 renderer and deepseek3 parser against Ollama's own test tables
(model/renderers/deepseek3_test.go, model/parsers/deepseek3_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.deepseek3 import DeepSeek31Renderer, DeepSeek3Parser, parse_call_content
from renderer_reference import cases


def think_of(case):
    value = case.get("thinkValue")
    return value.get("value") if isinstance(value, dict) else None


@pytest.mark.parametrize("case", cases("deepseek3.json", "render"))
def test_render(case):
    assert (
        DeepSeek31Renderer().render(case["messages"], case.get("tools"), think_of(case))
        == case["expected"]
    )


def parser_for(case) -> DeepSeek3Parser:
    parser = DeepSeek3Parser()
    parser.has_thinking_support = bool(case.get("hasThinking"))
    parser.init([], None, bool(case.get("hasThinking")))
    return parser


def comparable(calls) -> list:
    return [
        (
            c["function"].get("name", ""),
            c["function"].get("arguments") or {},
            c["function"].get("index", 0),
        )
        for c in calls or []
    ]


def run(parser, pieces):
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
def test_parse_whole_output(table):
    for case in cases("deepseek3.json", table):
        case = case.values[0]
        content, thinking, calls = run(parser_for(case), [case["input"]])
        assert (content, thinking) == (
            case.get("expectedContent", ""),
            case.get("expectedThinking", ""),
        ), case["name"]
        if table == "parse":
            assert comparable(calls) == comparable(case.get("expectedCalls")), case["name"]


@pytest.mark.parametrize("case", cases("deepseek3.json", "streaming"))
def test_parse_streamed_output(case):
    content, thinking, calls = run(parser_for(case), case["chunks"])
    assert (content, thinking) == (
        case.get("expectedContent", ""),
        case.get("expectedThinking", ""),
    )
    assert comparable(calls) == comparable(case.get("expectedCalls"))


@pytest.mark.parametrize("case", cases("deepseek3.json", "tool_call"))
def test_tool_call_content(case):
    if case.get("expectError"):
        with pytest.raises(ValueError):
            parse_call_content(case["content"])
        return
    call = parse_call_content(case["content"])
    assert comparable([{"function": call}]) == comparable([case["expected"]])


def test_the_parser_starts_thinking_when_asked():
    # TestDeepSeekParser_Init, _HasThinkingSupport, _HasToolSupport
    parser = DeepSeek3Parser()
    tools = [{"type": "function", "function": {"name": "test_tool"}}]
    assert parser.init(tools, None, True) is tools and parser.state == "thinking"
    assert parser.has_tool_support and parser.has_thinking_support
