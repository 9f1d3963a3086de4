"""The qwen3.5, ornith and qwen3.8 renderers and the qwen3.5 parser against Ollama's test cases
(model/renderers/qwen38_test.go tables; model/parsers/qwen35_test.go and qwen38_test.go)."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from ollamakit_renderers.qwen35 import Qwen38Renderer
from renderer_reference import FOLDER, cases

DATA = json.loads((FOLDER / "qwen3.5.json").read_text())


def think_of(case):
    value = case.get("think")
    return value.get("value") if isinstance(value, dict) else value


@pytest.mark.parametrize("case", cases("qwen3.5.json", "qwen38_render"))
def test_qwen38_render(case):
    renderer = Qwen38Renderer()
    renderer.image_tags = False
    assert renderer.render(case["messages"], case.get("tools"), think_of(case)) == case["want"]


@pytest.mark.parametrize("case", cases("qwen3.5.json", "qwen38_effort"))
def test_qwen38_reasoning_effort(case):
    assert Qwen38Renderer().reasoning_instructions(think_of(case)) == case["want"]


@pytest.mark.parametrize("case", cases("qwen3.5.json", "qwen38_invalid"))
def test_qwen38_refuses_what_it_cannot_render(case):
    messages = [
        {**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m
        for m in case.get("messages") or []
    ]
    with pytest.raises(ValueError, match=f"^{case['wantErr']}$"):
        Qwen38Renderer().render(messages, None, None)


@pytest.mark.parametrize("case", cases("qwen3.5.json", "qwen38_parse"))
def test_qwen38_control_like_output(case):
    parser = rendering.load_parser("qwen3.5")
    parser.init(None, None, True)
    parsed = parser.add(case["continuation"], True)
    assert (parsed.content, parsed.thinking, parsed.tool_calls) == (
        case["wantContent"],
        case["wantThinking"],
        [],
    )


@pytest.mark.parametrize(
    "case", DATA["transcribed"]["cases"], ids=[c["from"] for c in DATA["transcribed"]["cases"]]
)
def test_qwen35_parser(case):
    parser = rendering.load_parser("qwen3.5")
    parser.init(case.get("tools"), case.get("last"), case["think"])
    for n, step in enumerate(case["steps"]):
        parsed = parser.add(step["input"], step["done"])
        calls = [
            {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in parsed.tool_calls
        ]
        assert (parsed.content, parsed.thinking, calls) == (
            step["content"],
            step["thinking"],
            step["calls"],
        ), n


ORNITH_HISTORY = [
    {"role": "user", "content": "Say hello."},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Now say bye."},
]


def test_ornith_renders_think_blocks_in_history():
    # TestOrnithRendererMatchesAssistantHistoryThinkBlocks (model/renderers/ornith_test.go)
    assert rendering.load_renderer("ornith").render(ORNITH_HISTORY, None, None) == (
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>\n"
        "<|im_start|>user\nNow say bye.<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_ornith_keeps_think_blocks_when_not_thinking():
    # TestOrnithRendererKeepsAssistantThinkBlocksWhenThinkingDisabled (model/renderers/ornith_test.go)
    history = [
        ORNITH_HISTORY[0],
        {**ORNITH_HISTORY[1], "thinking": "Keep it short."},
        ORNITH_HISTORY[2],
    ]
    assert rendering.load_renderer("ornith").render(history, None, False) == (
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n<think>\nKeep it short.\n</think>\n\nHello.<|im_end|>\n"
        "<|im_start|>user\nNow say bye.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert type(rendering.load_parser("ornith")) is type(rendering.load_parser("qwen3.5"))
