"""Reading model output back into thinking, content and tool calls, whatever the pieces the
text arrives in."""

from __future__ import annotations

import re

import pytest

from ollamakit.lib.structured.output import OutputParser, template_tags
from ollamakit.lib.templates import parse_template

THINK = ("<think>", "</think>")


def parse(parser: OutputParser, text: str, cuts=()):
    """Feed ``text`` cut at ``cuts``; (thinking, content, calls as (index, name, arguments))."""
    bounds = [0, *cuts, len(text)]
    parts = [parser.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])] + [parser.flush()]
    calls = [
        (c["function"]["index"], c["function"]["name"], c["function"]["arguments"])
        for p in parts
        for c in p.tool_calls
    ]
    return "".join(p.thinking for p in parts), "".join(p.content for p in parts), calls


def every_split(make, text: str):
    """The same result for the whole text and for every two-piece split of it."""
    whole = parse(make(), text)
    for cut in range(1, len(text)):
        assert parse(make(), text, [cut]) == whole, cut
    assert parse(make(), text, range(1, len(text))) == whole  # one character at a time
    return whole


@pytest.mark.parametrize(
    "text, thinking, content",
    [
        ("<think>step one</think>\n\nThe answer.", "step one", "The answer."),
        ("  \n<think>a</think>b", "a", "b"),
        ("No thoughts, just words.", "", "No thoughts, just words."),
        ("<think>never closed", "never closed", ""),
        ("<thin", "", "<thin"),
    ],
)
def test_thinking_split(text, thinking, content):
    assert every_split(lambda: OutputParser(thinking_tags=THINK), text) == (thinking, content, [])


def test_prompt_that_opens_the_thinking():
    parser = lambda: OutputParser(thinking_tags=THINK, prompt="<|assistant|><think>\n")  # noqa: E731
    assert every_split(parser, "hmm</think>42") == ("hmm", "42", [])


def test_tool_calls_after_a_tag():
    text = (
        'Checking.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}</tool_call>'
    )
    make = lambda: OutputParser(tool_tag="<tool_call>", tool_names=["get_weather", "get_time"])  # noqa: E731
    assert every_split(make, text) == (
        "",
        "Checking.",
        [(0, "get_weather", {"city": "Paris"}), (1, "get_time", {"zone": "CET"})],
    )


def test_tool_calls_with_the_brace_tag_and_string_arguments():
    text = '[{"name": "a", "parameters": {"x": 1}}, {"function": {"name": "b", "arguments": "{\\"y\\": [1, 2]}"}}]'
    make = lambda: OutputParser(tool_tag="[", tool_names=["a", "b"])  # noqa: E731
    assert every_split(make, text)[2] == [(0, "a", {"x": 1}), (1, "b", {"y": [1, 2]})]
    make = lambda: OutputParser(tool_tag="{", tool_names=["a"])  # noqa: E731
    assert every_split(make, '{"name": "a", "arguments": {"s": "}{"}}') == (
        "",
        "",
        [(0, "a", {"s": "}{"})],
    )


@pytest.mark.parametrize(
    "text",
    [
        "I like {braces} and JSON-ish text.",
        '{"name": "unknown_tool", "arguments": {}}',
        '{"answer": 42}',
    ],
)
def test_text_that_is_not_a_tool_call_stays_content(text):
    assert every_split(lambda: OutputParser(tool_tag="{", tool_names=["a"]), text) == ("", text, [])


def test_a_tag_without_a_call_is_given_back():
    make = lambda: OutputParser(tool_tag="<tool_call>", tool_names=["a"])  # noqa: E731
    assert every_split(make, "see <tool_call> nothing") == ("", "see <tool_call> nothing", [])


def test_thinking_then_tool_call():
    make = lambda: OutputParser(thinking_tags=THINK, tool_tag="<tool_call>", tool_names=["a"])  # noqa: E731
    assert every_split(make, '<think>call a</think><tool_call>{"name": "a"}</tool_call>') == (
        "call a",
        "",
        [(0, "a", {})],
    )


def test_call_ids():
    parsed = OutputParser(tool_tag="{", tool_names=["a"]).feed('{"name": "a", "arguments": {}}')
    assert re.fullmatch(r"call_[a-z0-9]{8}", parsed.tool_calls[0]["id"])


def test_tags_come_from_the_template():
    qwen_like = parse_template(
        "{{ if .Tools }}{{ .Tools }}{{ end }}{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
        "{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}</tool_call>{{ end }}"
        "{{ .Content }}{{ end }}"
    )
    assert template_tags(qwen_like, None) == (("<think>", "</think>"), "<tool_call>")
    assert template_tags(None, "{% if tools %}<tool_call>{% endif %}")[1] == "<tool_call>"
    assert template_tags(None, "{{ messages }}")[1] == "{"


def test_nothing_to_parse_means_no_parser():
    assert OutputParser.build(None, None, tools=None, think=None) is None
    assert OutputParser.build(None, None, tools=None, think=False) is None


@pytest.mark.parametrize(
    ("tag", "preserved"),
    [
        ("[TOOL_CALLS][", ("[TOOL_CALLS]",)),
        ("<tool_call>", ("<tool_call>",)),
        ("<|tool_call_start|>[", ("<|tool_call_start|>",)),
        ("{", ()),
        ("[", ()),
    ],
)
def test_the_tool_tag_a_parser_asks_to_keep(tag, preserved):
    assert OutputParser(tool_tag=tag, tool_names=["f"]).preserved_tokens == preserved
    assert OutputParser(thinking_tags=("<think>", "</think>")).preserved_tokens == ()
