"""The laguna and poolside-v1 renderers and parsers against Ollama's test cases
(model/renderers/laguna_test.go, model/parsers/laguna_test.go), in
tests/reference/renderers/laguna.json."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from ollamakit_renderers.laguna import LagunaParser, LagunaRenderer, LagunaV8Renderer
from renderer_reference import FOLDER, cases, think_of

DATA = json.loads((FOLDER / "laguna.json").read_text())
TRANSCRIBED = DATA["transcribed"]
TOOLS = TRANSCRIBED["tools"]


@pytest.mark.parametrize("case", cases("laguna.json", "render"))
def test_render(case):
    got = LagunaRenderer().render(
        case.get("messages") or [], case.get("tools"), think_of(case.get("think"))
    )
    assert got == case["want"]


@pytest.mark.parametrize("case", cases("laguna.json", "render_v8"))
def test_render_v8(case):
    got = LagunaV8Renderer().render(
        case.get("messages") or [], case.get("tools"), think_of(case.get("think"))
    )
    assert got == case["want"]


def test_an_assistant_prefill_is_continued_in_place():
    case = TRANSCRIBED["render_prefill"]
    assert LagunaRenderer().render(case["messages"], None, None) == case["want"]


def test_the_names_are_registered():
    assert isinstance(rendering.load_renderer("laguna"), LagunaRenderer)
    assert isinstance(rendering.load_renderer("poolside-v1"), LagunaV8Renderer)


def checked(calls: list, want: list) -> None:
    """Each call's name, and the arguments the Go test looks at."""
    assert len(calls) == len(want)
    for call, expected in zip(calls, want):
        function = call["function"]
        assert function["name"] == expected["name"]
        for key, value in expected["arguments"].items():
            got = function["arguments"][key]
            assert got == value
            # a number (Go's float64 from JSON, int from a declared integer) is not its text
            number = (int, float)
            assert isinstance(got, number) if type(value) in number else type(got) is type(value)


def prepared(case: dict):
    parser = rendering.load_parser(case["parser"])
    assert parser.has_tool_support and parser.has_thinking_support
    parser.init(TOOLS.get(case.get("tools")), case.get("last"), case.get("think"))
    return parser


@pytest.mark.parametrize(
    "case", TRANSCRIBED["steps"], ids=[c["from"] for c in TRANSCRIBED["steps"]]
)
def test_parse(case):
    parser = prepared(case)
    for step in case["steps"]:
        parsed = parser.add(step["chunk"], step["done"])
        if "content" in step:
            assert parsed.content == step["content"]
        if "thinking" in step:
            assert parsed.thinking == step["thinking"]
        if "calls" in step:
            checked(parsed.tool_calls, step["calls"])


def fed(parser, chunks: list[str]) -> tuple[str, str, list]:
    content = thinking = ""
    calls: list = []
    for n, chunk in enumerate(chunks):
        parsed = parser.add(chunk, n == len(chunks) - 1)
        content, thinking = content + parsed.content, thinking + parsed.thinking
        calls += parsed.tool_calls
    return content, thinking, calls


@pytest.mark.parametrize(
    "case", TRANSCRIBED["together"], ids=[c["from"] for c in TRANSCRIBED["together"]]
)
def test_parse_chunks(case):
    content, thinking, calls = fed(prepared(case), case["chunks"])
    assert (content, thinking) == (case["content"], case["thinking"])
    checked(calls, case["calls"])


@pytest.mark.parametrize(
    "case,chunks",
    [
        (c, ["Document literal <think", " fakeout"])
        for c in cases("laguna.json", "partial_think_open")
    ]
    + [(c, ["</think", " fakeout"]) for c in cases("laguna.json", "partial_think_close")],
)
def test_a_tag_that_does_not_complete_is_content(case, chunks):
    parser = LagunaParser()
    parser.init(None, case.values[0].get("last"), think_of(case.values[0].get("thinkValue")))
    assert fed(parser, chunks) == ("".join(chunks), "", [])


def test_calls_are_numbered_in_order():
    parser = prepared({"parser": "laguna", "tools": "weather"})
    call = "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>{}</arg_value>\n</tool_call>"
    _, _, calls = fed(parser, [call.format("Paris"), call.format("Rome")])
    assert [(c["function"]["index"], c["function"]["arguments"]) for c in calls] == [
        (0, {"location": "Paris"}),
        (1, {"location": "Rome"}),
    ]
