"""The qwen3-vl-instruct and qwen3-vl-thinking renderers and parsers against Ollama's own test
tables (model/renderers/qwen3vl_*_test.go, model/parsers/qwen3vl_*_test.go)."""

from __future__ import annotations

import json

import pytest

from ollamakit_renderers.qwen3vl import (
    Qwen3VLParser,
    Qwen3VLRenderer,
    Qwen3VLThinkingParser,
    Qwen3VLThinkingRenderer,
    parse_json_function,
)
from renderer_reference import FOLDER, cases

TABLES = json.loads((FOLDER / "qwen3-vl.json").read_text())["tables"]
KINDS = {
    "qwenEventContent": "content",
    "qwenEventThinkingContent": "thinking",
    "qwenEventRawToolCall": "call",
}
STATES = {"CollectingContent": "content", "CollectingThinkingContent": "thinking"}


def with_images(messages):
    """Ollama's tests give images as byte strings; here they only need counting."""
    return [{**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m for m in messages]


@pytest.mark.parametrize("case", cases("qwen3-vl.json", "render_instruct"))
def test_render_instruct(case):
    renderer = Qwen3VLRenderer()
    renderer.image_tags = bool(case.get("useImgTags"))  # as the test builds it
    assert renderer.render(with_images(case["msgs"]), case.get("tools"), None) == case["expected"]


@pytest.mark.parametrize("case", cases("qwen3-vl.json", "render_thinking"))
def test_render_thinking(case):
    renderer = Qwen3VLThinkingRenderer()
    renderer.image_tags = False
    assert renderer.render(with_images(case["msgs"]), case.get("tools"), None) == case["expected"]


def test_think_overrides_the_renderers_default():
    # TestQwen3VLRendererThinkOverride
    messages = [{"role": "user", "content": "Hello"}]
    assert (
        Qwen3VLThinkingRenderer()
        .render(messages, None, None)
        .endswith("<|im_start|>assistant\n<think>\n")
    )
    assert (
        Qwen3VLThinkingRenderer().render(messages, None, False).endswith("<|im_start|>assistant\n")
    )
    assert (
        Qwen3VLRenderer().render(messages, None, True).endswith("<|im_start|>assistant\n<think>\n")
    )


def event_of(go: dict) -> tuple:
    kind = KINDS[go["$type"]]
    return (kind, go["raw"] if kind == "call" else go["content"])


EVENT_TABLES = [
    "instruct_events",
    "old_events",
    "instruct_call_space",
    "thinking_events",
    "thinking_prefill_events",
    "content_prefill_events",
    "thinking_space_events",
    "thinking_call_space",
]


@pytest.mark.parametrize("table", EVENT_TABLES)
def test_events(table):
    setup = TABLES[table]["setup"]
    for case in TABLES[table]["cases"]:
        parser = Qwen3VLThinkingParser() if setup["thinking"] else Qwen3VLParser()
        last = case.get("prefillMsg") if table == "thinking_call_space" else setup.get("last")
        parser.init([], last, None)
        for step in case.get("steps") or []:  # one of Ollama's cases has no steps
            parser.held += step["input"]
            assert parser.events() == [event_of(e) for e in step.get("wantEvents") or []], (
                case["desc"],
                step["input"],
            )


@pytest.mark.parametrize("table", ["tool_call", "thinking_tool_call"])
def test_tool_call(table):
    for case in TABLES[table]["cases"]:
        call = parse_json_function(case["rawToolCall"])
        want = case["wantToolCall"]["function"]
        assert (call["name"], call["arguments"]) == (
            want.get("name", ""),
            want.get("arguments") or {},
        ), case["name"]


@pytest.mark.parametrize("case", cases("qwen3-vl.json", "state"))
def test_initial_state(case):
    parser = Qwen3VLThinkingParser() if case["hasThinking"] else Qwen3VLParser()
    parser.init(None, case.get("last"), None)
    assert parser.state == STATES[case["wantState"]["$ref"]]


def test_calls_are_numbered_in_order():
    # TestQwen3VLNonThinkingAssignsSequentialToolCallIndices
    parser = Qwen3VLParser()
    parser.init([], None, None)
    parsed = parser.add(
        '<tool_call>{"name":"first","arguments":{"a":"1"}}</tool_call>'
        '<tool_call>{"name":"second","arguments":{"b":"2"}}</tool_call>',
        True,
    )
    assert [(c["function"]["name"], c["function"]["index"]) for c in parsed.tool_calls] == [
        ("first", 0),
        ("second", 1),
    ]
