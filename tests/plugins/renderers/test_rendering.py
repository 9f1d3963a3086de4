"""The kernel side of renderers and parsers (ollamakit.rendering): lookup by name, the choice of
parser for gpt-oss, the response-stream adapter, and the stripping of old thoughts."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from ollamakit.errors import BadRequest, OllamaError
from ollamakit.names import ModelName
from renderer_reference import FOLDER, cases


def test_the_built_in_names_are_registered():
    assert "qwen3-coder" in rendering.renderer_names()
    assert {"harmony", "qwen3-coder", "passthrough"} <= set(rendering.parser_names())


def test_names_are_exact():
    rendering.check_names("qwen3-coder", "harmony")
    with pytest.raises(BadRequest, match='unknown renderer "Qwen3-Coder"'):
        rendering.check_names("Qwen3-Coder", "")
    with pytest.raises(BadRequest, match='unknown parser "nope"'):
        rendering.check_names("", "nope")


def test_a_stored_unknown_renderer_cannot_prompt_and_an_unknown_parser_is_ignored():
    with pytest.raises(OllamaError, match='unknown renderer "gone"') as raised:
        rendering.load_renderer("gone")
    assert raised.value.status == 500
    assert rendering.load_parser("gone") is None and rendering.load_parser("") is None


@pytest.mark.parametrize(
    "config,template,name",
    [
        ({"model_family": "gptoss"}, "<|start|>{{ .Prompt }}<|end|>", "harmony"),
        ({"model_family": "gpt-oss"}, "<|start|>x<|end|>", "harmony"),
        ({"model_family": "gptoss", "parser": "passthrough"}, "<|start|>x<|end|>", "passthrough"),
        ({"model_family": "gptoss"}, "{{ .Prompt }}", ""),  # not a harmony template
        ({"model_family": "llama"}, "<|start|>x<|end|>", ""),
        ({"model_family": "llama", "parser": "qwen3-coder"}, None, "qwen3-coder"),
    ],
)
def test_which_parser_a_model_gets(config, template, name):
    assert rendering.parser_name(config, template) == name


def test_harmony_thinks_at_most_high():
    assert [rendering.harmony_think(t) for t in ("max", "high", True, None)] == [
        "high",
        "high",
        True,
        None,
    ]


def test_the_stream_adapter_gives_calls_ids_and_turns_errors_into_api_errors():
    stream = rendering.ParsedStream(rendering.load_parser("qwen3-coder"))
    parsed = stream.feed(
        "ok <tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>"
    )
    (call,) = parsed.tool_calls
    assert parsed.content == "ok" and call["id"].startswith("call_") and len(call["id"]) == 13
    assert call["function"] == {"index": 0, "name": "f", "arguments": {"a": "1"}}
    assert stream.thinking is None
    broken = rendering.ParsedStream(rendering.load_parser("qwen3-coder"))
    with pytest.raises(OllamaError):
        broken.feed("<tool_call><function=f><parameter=a>1</function></tool_call>")


def test_a_thinking_parser_says_where_the_answer_starts():
    assert (
        rendering.ParsedStream(rendering.load_parser("harmony"), True).thinking.closing
        == "<|channel|>final<|message|>"
    )
    assert rendering.ParsedStream(rendering.load_parser("harmony"), False).thinking is None


@pytest.mark.parametrize("case", cases("filter-think-tags.json", "filter_think_tags"))
def test_filter_think_tags(case):
    model = case["model"]
    name = ModelName.parse(model["name"]) if model.get("name") else None
    family = (
        (model.get("Config") or {}).get("ModelFamily", "")
        if isinstance(model.get("Config"), dict)
        else ""
    )
    assert rendering.filter_think_tags(case["msgs"], family, name) == case["want"]


@pytest.mark.parametrize(
    "content,left",
    [
        ("  <think>a</think>\n b", "b"),
        ("<think>never closed", ""),
        ("   ", ""),
        ("<thi", ""),
        ("no thoughts <think>x</think>", "no thoughts <think>x</think>"),
        ("<think>a</think>b</think>c", "b</think>c"),
    ],
)
def test_what_one_pass_of_the_thinking_parser_leaves(content, left):
    # one AddContent of Ollama's thinking.Parser, with nothing flushed after it
    assert rendering.without_thinking(content) == left


def test_the_docs_list_every_built_in_name():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "renderers.md").read_text()
    table = text.split("## The built-in ones", 1)[1].split("## Tested against", 1)[0]
    for name in set(rendering.renderer_names()) | set(rendering.parser_names()):
        assert f"`{name}`" in table, f"docs/renderers.md does not list {name}"


def test_every_name_in_ollamas_registry_is_built_in():
    # registry.json: the names Ollama's rendererForName and ParserForName know
    registry = json.loads((FOLDER / "registry.json").read_text())
    assert set(registry["renderers"]["names"]) <= set(rendering.renderer_names())
    assert set(registry["parsers"]["names"]) <= set(rendering.parser_names())
    for name in registry["renderers"]["names"]:
        rendering.check_names(renderer=name)
        assert rendering.load_renderer(name) is not None
    for name in registry["parsers"]["names"]:
        rendering.check_names(parser=name)
        assert rendering.load_parser(name) is not None


@pytest.mark.parametrize(
    "renderer,name,model_type,resolved",
    [
        ("gemma4", "gemma4:e2b", "5.1B", "gemma4-small"),
        ("gemma4", "gemma4:e4b-it-q8_0", "", "gemma4-small"),
        ("gemma4", "gemma4:31b", "", "gemma4-large"),
        ("gemma4", "me/gemma4-26b-a4b:latest", "", "gemma4-large"),
        ("gemma4", "gemma4:latest", "30.7B", "gemma4-large"),  # no size in the name: the count
        ("gemma4", "mine:latest", "12B", "gemma4-large"),
        ("gemma4", "mine:latest", "11.9B", "gemma4-small"),
        ("gemma4", "mine:latest", "1K", "gemma4-small"),
        ("gemma4", "mine:latest", "big", "gemma4-small"),
        ("gemma4-large", "gemma4:e2b", "", "gemma4-large"),  # only the legacy name is resolved
        ("laguna", "laguna:31b", "", "laguna"),
        ("", "gemma4:31b", "", ""),
    ],
)
def test_the_legacy_gemma4_renderer_resolves_by_the_models_size(
    renderer, name, model_type, resolved
):
    config = {"renderer": renderer, "model_type": model_type}
    assert rendering.renderer_name(config, ModelName.parse(name)) == resolved
