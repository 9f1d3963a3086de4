"""The cogito renderer and parser against Ollama's own test tables (model/renderers/cogito_test.go,
model/parsers/cogito_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.cogito import CogitoParser, CogitoRenderer, parse_call_content
from renderer_reference import cases


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


@pytest.mark.parametrize("case", cases("cogito.json", "render"))
def test_render(case):
    think = (case.get("thinkValue") or {}).get("value")
    assert CogitoRenderer().render(case["messages"], case.get("tools"), think) == case["expected"]


@pytest.mark.parametrize("case", cases("cogito.json", "parse"))
def test_parse(case):
    parser = CogitoParser()
    # as Ollama's test does: thinking is asked for when the case expects some
    parser.init(case.get("tools"), case.get("lastMessage"), bool(case.get("expectedThinking")))
    content, thinking, calls = run(parser, [case["input"]])
    assert (content, thinking) == (
        case.get("expectedContent", ""),
        case.get("expectedThinking", ""),
    )
    assert comparable(calls) == comparable(case.get("expectedToolCalls"))


@pytest.mark.parametrize("case", cases("cogito.json", "streaming"))
def test_streaming(case):
    parser = CogitoParser()
    parser.init(None, None, case.get("hasThinkingSupport"))
    content, thinking, calls = run(parser, case["chunks"])
    assert (content, thinking) == (
        case.get("expectedContent", ""),
        case.get("expectedThinking", ""),
    )
    assert comparable(calls) == comparable(case.get("expectedToolCalls"))


def test_streamed_thinking_answer_and_call():
    # TestCogitoParser_Streaming
    parser = CogitoParser()
    parser.init(None, None, True)
    content, thinking, calls = run(
        parser,
        [
            "This is ",
            "thinking content",
            ".</think>This is ",
            'content.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>test_tool\n```json\n{"arg":"value"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        ],
    )
    assert (content, thinking) == ("This is content.", "This is thinking content.")
    assert comparable(calls) == [("test_tool", {"arg": "value"}, 0)]


@pytest.mark.parametrize("case", cases("cogito.json", "tool_call"))
def test_tool_call_content(case):
    if case.get("expectError"):
        with pytest.raises(ValueError):
            parse_call_content(case["content"])
        return
    assert comparable([{"function": parse_call_content(case["content"])}]) == comparable(
        [case["expected"]]
    )
