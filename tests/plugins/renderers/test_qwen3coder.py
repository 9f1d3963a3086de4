"""The qwen3-coder renderer and parser against Ollama's own test tables
(model/renderers/qwen3coder_test.go, model/parsers/qwen3coder_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.common import overlap, trailing_space
from ollamakit_renderers.qwen3coder import (
    Qwen3CoderParser,
    Qwen3CoderRenderer,
    argument_text,
    definition_type,
    parse_call,
    parse_value,
    to_xml,
)
from renderer_reference import cases, go_len


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "render"))
def test_render(case):
    assert Qwen3CoderRenderer().render(case["msgs"], case.get("tools"), None) == case["expected"]


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "argument_text"))
def test_argument_text(case):
    assert argument_text(case["arg"]) == case["expected"]


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "definition_type"))
def test_definition_type(case):
    assert definition_type(case["propertyType"]) == case["expected"]


def test_a_tool_response_closes_its_turn_at_once():
    # TestQwen3CoderRendererToolResponseNoTrailingNewline
    messages = [
        {"role": "user", "content": "call tool"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "echo", "arguments": {"payload": "ok"}}}],
        },
        {"role": "tool", "content": '{"payload":"ok"}', "tool_name": "echo"},
    ]
    rendered = Qwen3CoderRenderer().render(messages, None, None)
    assert (
        "</tool_response>\n<|im_end|>" not in rendered and "</tool_response><|im_end|>" in rendered
    )


def event_of(go: dict) -> tuple:
    return ("content", go["content"]) if go["$type"] == "qwenEventContent" else ("call", go["raw"])


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "parser_events"))
def test_parser_events(case):
    parser = Qwen3CoderParser()
    for step in case["steps"]:
        parser.held += step["input"]
        assert parser.events() == [event_of(e) for e in step["wantEvents"] or []], step["input"]


def comparable(call: dict) -> tuple:
    function = call["function"]
    return function.get("name", ""), function.get("arguments") or {}


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "tool_call"))
def test_tool_call(case):
    assert comparable({"function": parse_call(case["rawToolCall"], case["tools"])}) == comparable(
        case["wantToolCall"]
    )


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "value"))
def test_typed_value(case):
    got = parse_value(case["raw"], case["paramType"] or [])
    want = case["want"]
    assert (
        got == want
        and type(got) is type(want)
        or (isinstance(want, float) and want.is_integer() and got == want)
    )


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "xml_transform"))
def test_xml_transform(case):
    assert to_xml(case["raw"]) == case["want"]


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "trailing_space"))
def test_trailing_space(case):
    text = case["s"]
    assert go_len(text[len(text) - trailing_space(text) :]) == case["want"]


@pytest.mark.parametrize("case", cases("qwen3-coder.json", "overlap"))
def test_overlap(case):
    text = case["s"]
    assert go_len(text[len(text) - overlap(text, case["delim"]) :]) == case["want"]


CALLS = (
    "<tool_call><function=first><parameter=a>1</parameter></function></tool_call>\n"
    "<tool_call><function=second><parameter=b>2</parameter></function></tool_call>\n"
    "<tool_call><function=third><parameter=c>3</parameter></function></tool_call>"
)
WANT = [("first", {"a": "1"}, 0), ("second", {"b": "2"}, 1), ("third", {"c": "3"}, 2)]


def summary(calls):
    return [
        (c["function"]["name"], c["function"]["arguments"], c["function"]["index"]) for c in calls
    ]


def test_calls_are_numbered():
    # TestQwen3CoderParserToolCallIndexing
    parser = Qwen3CoderParser()
    parser.init(None, None, None)
    assert summary(parser.add(CALLS, True).tool_calls) == WANT


def test_calls_are_numbered_across_pieces():
    # TestQwen3CoderParserToolCallIndexingStreaming
    parser = Qwen3CoderParser()
    parser.init(None, None, None)
    first = parser.add(
        "<tool_call><function=first><parameter=a>1</parameter></function></tool_call>"
        "<tool_call><function=second>",
        False,
    )
    rest = parser.add(
        "<parameter=b>2</parameter></function></tool_call><tool_call><function=third>"
        "<parameter=c>3</parameter></function></tool_call>",
        True,
    )
    assert summary(first.tool_calls + rest.tool_calls) == WANT


def test_init_starts_the_numbering_again():
    # TestQwen3CoderParserToolCallIndexResetOnInit
    parser = Qwen3CoderParser()
    parser.init(None, None, None)
    parser.add("<tool_call><function=first><parameter=a>1</parameter></function></tool_call>", True)
    parser.init(None, None, None)
    calls = parser.add(
        "<tool_call><function=second><parameter=b>2</parameter></function></tool_call>", True
    ).tool_calls
    assert summary(calls) == [("second", {"b": "2"}, 0)]
