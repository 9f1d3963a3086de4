"""The glm-4.7 renderer and parser (GLM-4.6's parser with thinking on from the start) against
Ollama's own test tables (model/renderers/glm47_test.go, model/parsers/glm46_test.go,
model/parsers/glm47_test.go)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ollamakit_renderers.glm47 import GLM46Parser, GLM47Parser, GLM47Renderer, parse_call, repair
from ollamakit_renderers.qwen3coder import direct_text
from renderer_reference import cases

KINDS = {
    "glm46EventContent": "content",
    "glm46EventThinkingContent": "thinking",
    "glm46EventRawToolCall": "call",
}


def tool(name, props, required):
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "required": required,
                "properties": {p: {"type": ["string"]} for p in props},
            },
        },
    }


# glm46FinalizationTestTools
FINAL_TOOLS = [
    tool("grep", ["pattern", "path"], ["pattern", "path"]),
    tool("write", ["path", "content"], ["path", "content"]),
]


@pytest.mark.parametrize("case", cases("glm-4.7.json", "render"))
def test_render(case):
    think = (case.get("thinkValue") or {}).get("value")
    assert GLM47Renderer().render(case["messages"], case.get("tools"), think) == case["expected"]


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_events"))
def test_events(case):
    parser = GLM46Parser()  # as the test builds it: no Init, looking for <think>
    for step in case.get("steps") or []:
        parser.held += step["input"]
        want = [
            (KINDS[e["$type"]], e.get("raw", e.get("content")))
            for e in step.get("wantEvents") or []
        ]
        assert parser.events() == want, step["input"]


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_final_call"))
def test_a_call_the_output_ends_in_is_read(case):
    parser = GLM46Parser()
    parser.init(FINAL_TOOLS, None, None)
    calls = []
    for chunk in case["chunks"]:
        parsed = parser.add(chunk.get("content", ""), bool(chunk.get("done")))
        assert (parsed.content, parsed.thinking) == ("", "")
        calls += parsed.tool_calls
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("grep", {"pattern": "needle", "path": "."})
    ]


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_incomplete_call"))
def test_an_incomplete_call_at_the_end_is_an_error(case):
    parser = GLM46Parser()
    parser.init(FINAL_TOOLS, None, None)
    with pytest.raises(ValueError, match="incomplete GLM tool call"):
        parser.add(case["input"], True)


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_xml_order"))
def test_xml_keeps_document_order(case):
    root = ET.fromstring(case["xml"])
    assert [direct_text(e) for e in root.findall("arg_key")] == case["wantKeys"]
    assert [direct_text(e) for e in root.findall("arg_value")] == case["wantValues"]


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_tool_call"))
def test_tool_call(case):
    call = parse_call(case["rawToolCall"], case.get("tools"))
    want = case["wantToolCall"]["function"]
    assert call == {"name": want.get("name", ""), "arguments": want.get("arguments") or {}}


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm46_repair"))
def test_repair(case):
    assert repair(case["input"]) == case["want"]


CALC = [
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "parameters": {
                "type": "object",
                "properties": {"count": {"type": "integer"}, "enabled": {"type": "boolean"}},
            },
        },
    }
]


def run(parser, pieces):
    content = thinking = ""
    calls = []
    for piece, done in pieces:
        parsed = parser.add(piece, done)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    return (
        content,
        thinking,
        [
            (c["function"]["name"], c["function"]["arguments"], c["function"]["index"])
            for c in calls
        ],
    )


def test_glm47_thinks_first_and_types_arguments():
    # TestGLM47ParserAdd
    parser = GLM47Parser()
    parser.init(CALC, None, None)
    out = "plan</think>Answer<tool_call>calculate<arg_key>count</arg_key><arg_value>3</arg_value><arg_key>enabled</arg_key><arg_value>true</arg_value></tool_call>"
    assert run(parser, [(out, True)]) == (
        "Answer",
        "plan",
        [("calculate", {"count": 3, "enabled": True}, 0)],
    )


def test_glm47_leading_close_and_no_thinking():
    # TestGLM47ParserNoThinkingContent, TestGLM47ParserThinkingDisabled
    parser = GLM47Parser()
    parser.init(None, None, None)
    assert run(parser, [("</think>Plain answer", True)]) == ("Plain answer", "", [])
    parser = GLM47Parser()
    parser.init(None, None, False)
    assert run(parser, [("Plain answer", True)]) == ("Plain answer", "", [])


def test_glm47_numbers_calls_across_pieces_and_again_after_init():
    # TestGLM47ParserToolCallIndexingStreaming, TestGLM47ParserToolCallIndexResetOnInit
    parser = GLM47Parser()
    parser.init(None, None, None)
    got = run(
        parser,
        [
            (
                "plan</think><tool_call>first<arg_key>a</arg_key><arg_value>1</arg_value></tool_call><tool_call>second<arg_key>b</arg_key>",
                False,
            ),
            (
                "<arg_value>2</arg_value></tool_call><tool_call>third<arg_key>c</arg_key><arg_value>3</arg_value></tool_call>",
                True,
            ),
        ],
    )
    assert got[2] == [("first", {"a": "1"}, 0), ("second", {"b": "2"}, 1), ("third", {"c": "3"}, 2)]
    parser.init(None, None, None)
    got = run(
        parser,
        [
            (
                "plan</think><tool_call>second<arg_key>b</arg_key><arg_value>2</arg_value></tool_call>",
                True,
            )
        ],
    )
    assert got[2] == [("second", {"b": "2"}, 0)]


def test_markup_characters_in_values_survive():
    # TestGLM47ParserToolCallEscaping
    assert parse_call(
        "exec\n<arg_key>expr</arg_key>\n<arg_value>a < b && c > d</arg_value>", None
    ) == {"name": "exec", "arguments": {"expr": "a < b && c > d"}}


@pytest.mark.parametrize("case", cases("glm-4.7.json", "glm_ocr_render"))
def test_glm_ocr_render(case):
    from ollamakit_renderers.glm47 import GlmOcrRenderer

    renderer = GlmOcrRenderer()
    renderer.image_tags = bool(case["renderer"].get("useImgTags"))  # as the test builds it
    messages = [
        {**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m
        for m in case["messages"]
    ]
    assert renderer.render(messages, case.get("tools"), None) == case["expected"]


def test_glm_ocr_parser_does_not_think_but_skips_a_think_block():
    from ollamakit import rendering

    parser = rendering.load_parser("glm-ocr")
    assert not parser.has_thinking_support and parser.has_tool_support
    parser.init(None, None, None)
    parsed = parser.add("<think>x</think>Text found.", True)
    assert (parsed.content, parsed.thinking) == ("Text found.", "x")
