"""The ministral parser against Ollama's own test tables (model/parsers/ministral_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.ministral import MinistralParser, json_end
from renderer_reference import cases, go_len


def event_of(go: dict) -> tuple:
    kind = go["$type"]
    if kind == "ministralEventContent":
        return ("content", go["content"])
    if kind == "ministralEventThinking":
        return ("thinking", go["thinking"])
    return ("call", go["name"], go["args"])


@pytest.mark.parametrize("case", cases("ministral.json", "events"))
def test_events(case):
    parser = MinistralParser()
    parser.has_thinking_support = bool(case.get("think"))
    parser.init(case.get("tools"), None, None)
    for step in case["steps"]:
        parser.held += step["input"]
        assert parser.events() == [event_of(e) for e in step.get("wantEvents") or []], step["input"]


@pytest.mark.parametrize("case", cases("ministral.json", "json_end"))
def test_json_end(case):
    end = json_end(case["input"])
    assert (go_len(case["input"][:end]) if end >= 0 else -1) == case["expected"]


def test_calls_are_numbered_in_order():
    # TestMinistralParserAssignsSequentialToolCallIndices
    parser = MinistralParser()
    parser.init(
        [{"function": {"name": "get_weather"}}, {"function": {"name": "get_time"}}], None, None
    )
    parsed = parser.add(
        '[TOOL_CALLS]get_weather[ARGS]{"location":"NYC"}[TOOL_CALLS]get_time[ARGS]{"timezone":"EST"}',
        True,
    )
    assert (parsed.content, parsed.thinking) == ("", "")
    assert [
        (c["function"]["name"], c["function"]["arguments"], c["function"]["index"])
        for c in parsed.tool_calls
    ] == [("get_weather", {"location": "NYC"}, 0), ("get_time", {"timezone": "EST"}, 1)]


@pytest.mark.parametrize(
    "output", ['[TOOL_CALLS]unknown_tool[ARGS]{"a": 1}', "[TOOL_CALLS]test[ARGS]{invalid json}"]
)
def test_unknown_tools_and_bad_arguments_are_errors(output):
    # TestMinistralParser_Errors
    parser = MinistralParser()
    parser.init([{"function": {"name": "known_tool"}}, {"function": {"name": "test"}}], None, None)
    with pytest.raises(ValueError):
        parser.add(output, True)
