"""The gemma4 renderers and parsers against Ollama's test cases (model/renderers/
gemma4_reference_test.go, model/parsers/gemma4_test.go), in tests/reference/renderers/gemma4.json."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from ollamakit_renderers.gemma4 import (
    Gemma4LargeRenderer,
    Gemma4NoThinkingParser,
    Gemma4Parser,
    Gemma4Renderer,
)
from ollamakit_renderers.gemma4_calls import (
    args_to_json,
    parse_call,
    repair_candidates,
    repair_delimiter,
    repair_object_close,
    repair_raw_string,
    repair_single_quotes,
)
from renderer_reference import FOLDER, cases, think_of

DATA = json.loads((FOLDER / "gemma4.json").read_text())
TABLES, TRANSCRIBED = DATA["tables"], DATA["transcribed"]


def renderer(**settings) -> Gemma4Renderer:
    made = Gemma4LargeRenderer() if settings.get("emptyBlockOnNothink") else Gemma4Renderer()
    made.image_tags = bool(settings.get("useImgTags"))  # Ollama's tests run without [img] tags
    return made


@pytest.mark.parametrize("case", cases("gemma4.json", "render"))
def test_render(case):
    got = renderer().render(case["messages"], case.get("tools"), think_of(case.get("think")))
    assert got == case["expected"]


@pytest.mark.parametrize("case", cases("gemma4.json", "render_variants"))
def test_each_name_renders_its_variant(case):
    made = rendering.load_renderer(case["rendererName"])
    made.image_tags = False
    messages = TABLES["render_variants_messages"]["cases"]
    assert made.render(messages, None, None) == case["expected"]


@pytest.mark.parametrize("case", cases("gemma4.json", "render_tool_continuations"))
def test_tool_continuations(case):
    messages = TABLES["render_tool_continuations_messages"]["cases"]
    tools = TABLES["render"]["cases"][-1]["tools"]  # bashSmallTool(), as that test passes it
    got = renderer(**case["renderer"]).render(messages, tools, None)
    assert got == case["want"]
    assert "First.<turn|>\n<|tool_call>" not in got and "Checking.<turn|>\nDone." not in got


@pytest.mark.parametrize("case", cases("gemma4.json", "render_known_differences"))
def test_where_ollama_departs_from_the_template(case):
    # the Jinja2 half of these cases needs the model's template; Ollama's own side is checked
    assert case["wantRenderFrag"] in renderer().render(case["messages"], case["tools"], None)


@pytest.mark.parametrize(
    "case", TRANSCRIBED["render"], ids=[c["from"] for c in TRANSCRIBED["render"]]
)
def test_render_transcribed(case):
    made = rendering.load_renderer(case["renderer"])
    made.image_tags = False
    got = made.render(case["messages"], case.get("tools"), case["think"])
    if "equals" in case:
        assert got == case["equals"]
    assert all(part in got for part in case.get("contains", ()))
    assert not any(part in got for part in case.get("not_contains", ()))


def summary(calls: list) -> list:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]


def feed(parser, chunks: list[str]) -> tuple[str, str, list]:
    content = thinking = ""
    calls: list = []
    for n, chunk in enumerate(chunks):
        parsed = parser.add(chunk, n == len(chunks) - 1)
        content, thinking = content + parsed.content, thinking + parsed.thinking
        calls += parsed.tool_calls
    assert [c["function"]["index"] for c in calls] == list(range(len(calls)))
    return content, thinking, calls


def expected_calls(go_calls) -> list:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in go_calls or ()]


@pytest.mark.parametrize("case", cases("gemma4.json", "parse"))
def test_parse(case):
    parser = Gemma4Parser()
    parser.init(None, case.get("lastMessage"), bool(case.get("thinkingEnabled")))
    content, thinking, calls = feed(parser, [case["input"]])
    assert content == case.get("expectedContent", "")
    assert thinking == case.get("expectedThinking", "")
    assert summary(calls) == expected_calls(case.get("expectedToolCalls"))


WEATHER = [("get_weather", {"location": "Paris"})]


@pytest.mark.parametrize(
    "case", cases("gemma4.json", "extra_call_close") + cases("gemma4.json", "response_after_call")
)
def test_noise_after_a_call_is_dropped(case):
    parser = Gemma4NoThinkingParser()
    parser.init(None, None, None)
    content, _, calls = feed(parser, case["chunks"])
    assert content == case["expectedContent"] and summary(calls) == WEATHER


@pytest.mark.parametrize("case", cases("gemma4.json", "split_thinking_tag"))
def test_split_thinking_tags(case):
    parser = Gemma4Parser()
    parser.init(None, None, True)
    content, thinking, _ = feed(parser, case["chunks"])
    assert (content, thinking) == (case["expectedContent"], case["expectedThinking"])


@pytest.mark.parametrize(
    "case", TRANSCRIBED["parse"], ids=[c["from"] for c in TRANSCRIBED["parse"]]
)
def test_parse_transcribed(case):
    parser = rendering.load_parser(case["parser"])
    parser.init(None, case.get("last"), case["think"])
    content, thinking, calls = feed(parser, case["chunks"])
    assert content == case["content"]
    assert thinking == case.get("thinking", "")
    if "calls" in case:
        assert summary(calls) == [(c["name"], c["arguments"]) for c in case["calls"]]


def test_what_each_parser_supports():
    assert Gemma4Parser.has_tool_support and Gemma4NoThinkingParser.has_tool_support
    assert Gemma4Parser.has_thinking_support and not Gemma4NoThinkingParser.has_thinking_support


@pytest.mark.parametrize("case", cases("gemma4.json", "args_to_json"))
def test_arguments_as_json(case):
    assert args_to_json(case["input"]) == case["expected"]


@pytest.mark.parametrize(
    "table,repair",
    [
        ("repair_delimiter", repair_delimiter),
        ("repair_object_close", repair_object_close),
        ("repair_single_quotes", repair_single_quotes),
    ],
)
def test_repairs(table, repair):
    for case in TABLES[table]["cases"]:
        assert repair(case["input"]) == case["expected"], case["name"]


@pytest.mark.parametrize("case", cases("gemma4.json", "repair_raw_string"))
def test_raw_string_repair(case):
    got = repair_raw_string(case["input"], case["toolName"], case["tools"])
    assert (got is not None) == case["expectedOK"]
    assert (got or "") == case.get("expected", "")


@pytest.mark.parametrize("case", cases("gemma4.json", "repair_candidates"))
def test_repair_candidates(case):
    assert repair_candidates(case["input"], case["toolName"], case["tools"]) == case["expected"]


@pytest.mark.parametrize(
    "case", cases("gemma4.json", "repair_calls") + cases("gemma4.json", "repair_properties")
)
def test_calls_repaired(case):
    call = parse_call(case["content"], case["tools"])
    want = case["want"]["function"]
    assert call == {"name": want["name"], "arguments": want["arguments"]}


@pytest.mark.parametrize("case", TRANSCRIBED["call"], ids=[c["from"] for c in TRANSCRIBED["call"]])
def test_calls(case):
    call = parse_call(case["content"], case["tools"])
    assert call == case["want"]
    for key, want in (case["want"] or {}).get("arguments", {}).items():
        # a quoted scalar stays a string, a bare one keeps its JSON type
        got = call["arguments"][key]
        assert isinstance(got, (int, float)) if isinstance(want, float) else type(got) is type(want)
