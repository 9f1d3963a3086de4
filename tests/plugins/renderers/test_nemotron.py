"""The nemotron-3-nano renderer and parser against Ollama's own test tables
(model/renderers/nemotron3nano_reference_test.go, nemotron3nano_test.go,
model/parsers/nemotron3nano_test.go)."""

from __future__ import annotations

import pytest

import json

from ollamakit_renderers.nemotron import (
    Nemotron3NanoParser,
    Nemotron3NanoRenderer,
    Nemotron35NanoRenderer,
)
from renderer_reference import FOLDER, cases

V35 = json.loads((FOLDER / "nemotron.json").read_text())["tables"]["render_v35_expected"]["cases"]


def think_of(value):
    return value.get("value") if isinstance(value, dict) else value


def with_images(messages):
    return [{**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m for m in messages]


@pytest.mark.parametrize("case", cases("nemotron.json", "render"))
def test_render(case):
    got = Nemotron3NanoRenderer().render(
        case["messages"], case.get("tools"), think_of(case.get("think"))
    )
    assert got == case["expected"]


@pytest.mark.parametrize("case", cases("nemotron.json", "render"))
def test_render_v35(case):
    # TestNemotron35RendererMatchesReference: the same conversations, 3.5's expected prompts
    got = Nemotron35NanoRenderer().render(
        case["messages"], case.get("tools"), think_of(case.get("think"))
    )
    assert got == V35[case["name"]]


def test_v35_medium_effort_hint():
    got = Nemotron35NanoRenderer().render([{"role": "user", "content": "Hello"}], None, "medium")
    assert got == V35["medium effort"]


@pytest.mark.parametrize("case", cases("nemotron.json", "render_images"))
def test_render_images(case):
    assert Nemotron3NanoRenderer().render(with_images(case["msgs"]), None, None) == case["expected"]


def run(case, pieces):
    parser = Nemotron3NanoParser()
    parser.init(None, None, think_of(case.get("thinkValue")))
    content = thinking = ""
    calls = []
    for n, piece in enumerate(pieces):
        parsed = parser.add(piece, n == len(pieces) - 1)
        content, thinking = content + parsed.content, thinking + parsed.thinking
        calls += [(c["function"]["name"], c["function"]["arguments"]) for c in parsed.tool_calls]
    return content, thinking, calls


def expected(case):
    calls = [
        (c["function"].get("name", ""), c["function"].get("arguments") or {})
        for c in case.get("expectedCalls") or []
    ]
    return case.get("expectedContent", ""), case.get("expectedThinking", ""), calls


@pytest.mark.parametrize("case", cases("nemotron.json", "parse"))
def test_parse(case):
    assert run(case, [case["input"]]) == expected(case)


@pytest.mark.parametrize("case", cases("nemotron.json", "streaming"))
def test_streaming(case):
    assert run(case, case["chunks"]) == expected(case)
