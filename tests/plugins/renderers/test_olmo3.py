"""The olmo3, olmo3.1, olmo3-think and olmo3-32b-think renderers and the olmo3 and olmo3-think
parsers against Ollama's own test tables (model/renderers/olmo3*_test.go,
model/parsers/olmo3*_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.olmo3 import (
    Olmo3Parser,
    Olmo3Renderer,
    Olmo3Think32BRenderer,
    Olmo3ThinkParser,
    Olmo3ThinkRenderer,
    parse_calls,
    parse_value,
)
from renderer_reference import cases

THINK_VARIANTS = {"Olmo31Think": Olmo3ThinkRenderer, "Olmo3Think32B": Olmo3Think32BRenderer}


def comparable(calls) -> list:
    return [
        (c["function"].get("name", ""), c["function"].get("arguments") or {}) for c in calls or []
    ]


@pytest.mark.parametrize("case", cases("olmo3.json", "render"))
def test_render(case):
    assert Olmo3Renderer().render(case["msgs"], case.get("tools"), None) == case["expected"]


@pytest.mark.parametrize("case", cases("olmo3.json", "render_think"))
def test_render_think(case):
    renderer = THINK_VARIANTS[case["variant"]["$ref"]]()
    assert renderer.render(case["msgs"], case.get("tools"), None) == case["expected"]


def drive(parser, pieces, done_after: bool):
    """Ollama's tests feed the pieces, then (olmo3) an empty last piece, or (olmo3-think) mark
    the last piece as the end."""
    content = thinking = ""
    calls = []
    steps = (
        [(p, False) for p in pieces] + [("", True)]
        if done_after
        else [(p, n == len(pieces) - 1) for n, p in enumerate(pieces)]
    )
    for piece, done in steps:
        parsed = parser.add(piece, done)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    return content, thinking, calls


@pytest.mark.parametrize(
    "table,pieces", [("parse", lambda c: [c["input"]]), ("streaming", lambda c: c["chunks"])]
)
def test_parse(table, pieces):
    for param in cases("olmo3.json", table):
        case = param.values[0]
        parser = Olmo3Parser()
        parser.init(None, None, None)
        content, thinking, calls = drive(parser, pieces(case), True)
        assert (content, thinking) == (
            case.get("expectedContent", ""),
            case.get("expectedThinking", ""),
        ), case["name"]
        assert comparable(calls) == comparable(case.get("expectedCalls")), case["name"]
        assert [c["function"]["index"] for c in calls] == list(range(len(calls)))


@pytest.mark.parametrize("case", cases("olmo3.json", "calls"))
def test_function_calls(case):
    if case.get("wantErr"):
        with pytest.raises(ValueError):
            parse_calls(case["input"])
        return
    got = [{"function": c} for c in parse_calls(case["input"])]
    assert comparable(got) == comparable(case.get("expected"))


@pytest.mark.parametrize("case", cases("olmo3.json", "value"))
def test_value(case):
    _, text, expected = case
    got = parse_value(text)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("case", cases("olmo3.json", "think_parse"))
def test_think_parse(case):
    parser = Olmo3ThinkParser()
    parser.init(None, case.get("lastMessage"), None)
    content, thinking, _ = drive(parser, [case["input"]], False)
    assert (content, thinking) == (
        case.get("expectedContent", ""),
        case.get("expectedThinking", ""),
    )


@pytest.mark.parametrize("table", ["think_streaming_edge_cases", "think_boundary"])
def test_think_streaming(table):
    for param in cases("olmo3.json", table):
        case = param.values[0]
        parser = Olmo3ThinkParser()
        parser.init(None, None, None)
        content, thinking, _ = drive(parser, case["chunks"], False)
        assert (content, thinking) == (
            case.get("expectedContent", ""),
            case.get("expectedThinking", ""),
        ), case["name"]


def test_capabilities():
    # TestOlmo3Parser_HasToolSupport / _HasThinkingSupport
    assert Olmo3Parser.has_tool_support and not Olmo3Parser.has_thinking_support
    assert Olmo3ThinkParser.has_thinking_support and not Olmo3ThinkParser.has_tool_support
