"""The gemma4, laguna and glimmer renderers against the model publishers' own chat templates, as
Ollama checks them (its VERIFY_JINJA2 tests): the templates are in
tests/reference/renderers/templates, the cases in the families' JSON files. Messages and tools
reach a template in the shape Ollama's tests give them (Go's JSON of its API types)."""

from __future__ import annotations

import datetime
import json
from functools import cache

import pytest
from jinja2 import Environment, nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ollamakit_renderers.common import arguments_json, go_marshal, think_bool, tool_json
from ollamakit_renderers.gemma4 import Gemma4LargeRenderer, Gemma4Renderer
from ollamakit_renderers.glimmer import GlimmerParser, GlimmerRenderer
from ollamakit_renderers.laguna import LagunaRenderer, LagunaV8Renderer
from renderer_reference import FOLDER, cases, think_of

TEMPLATES = FOLDER / "templates"
DATA = {
    name: json.loads((FOLDER / f"{name}.json").read_text())
    for name in ("gemma4", "laguna", "glimmer")
}


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise(message):
    raise ValueError(message)


class Generation(Extension):
    """Transformers' ``{% generation %}`` block (it marks the assistant's part): its body as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


@cache
def template(name: str, transformers: bool):
    """A template compiled as Ollama's test compiles it: in a plain Jinja environment (gemma4),
    or in Transformers' (trimmed blocks, ``tojson`` as Python writes JSON)."""
    source = (TEMPLATES / name).read_text()
    if not transformers:
        return Environment().from_string(source)
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols", Generation]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(source)


def go_tools(tools) -> list[dict]:
    return [json.loads(tool_json(t)) for t in tools or ()]


def arguments(call: dict, ordered: bool) -> dict:
    values = (call.get("function") or {}).get("arguments") or {}
    return json.loads(arguments_json(values) if ordered else go_marshal(values))


# -- gemma4 ---------------------------------------------------------------------------------

GEMMA4 = {
    "small": ("gemma4_e2b_chat_template.jinja2", Gemma4Renderer),
    "large": ("gemma4_31b_chat_template.jinja2", Gemma4LargeRenderer),
}


def gemma4_jinja(variant: str, messages, tools, think) -> str:
    shaped = []
    for m in messages or ():
        item = {"role": m.get("role") or "", "content": m.get("content") or ""}
        if m.get("thinking"):
            item["reasoning"] = m["thinking"]
        calls = [
            {
                **({"id": c["id"]} if c.get("id") else {}),
                "function": {"name": c["function"]["name"], "arguments": arguments(c, False)},
            }
            for c in m.get("tool_calls") or ()
        ]
        if calls:
            item["tool_calls"] = calls
        if m.get("tool_name"):
            item["name"] = m["tool_name"]
        if m.get("tool_call_id"):
            item["tool_call_id"] = m["tool_call_id"]
        shaped.append(item)
    kwargs = {"messages": shaped, "bos_token": "<bos>", "add_generation_prompt": True}
    if tools:
        kwargs["tools"] = go_tools(tools)
    if think_bool(think):
        kwargs["enable_thinking"] = True
    return template(GEMMA4[variant][0], False).render(**kwargs)


def gemma4(variant: str):
    made = GEMMA4[variant][1]()
    made.image_tags = False
    return made


@pytest.mark.parametrize("variant", GEMMA4)
@pytest.mark.parametrize("case", cases("gemma4.json", "render_parity"))
def test_gemma4_matches_its_templates(variant, case):
    think = think_of(case.get("think"))
    got = gemma4(variant).render(case["messages"], case.get("tools"), think)
    assert got == gemma4_jinja(variant, case["messages"], case.get("tools"), think)


@pytest.mark.parametrize(
    # Ollama leaves out of this check the cases it marks skipJinja2
    "case",
    [p for p in cases("gemma4.json", "render") if not p.values[0].get("skipJinja2")],
)
def test_gemma4_expected_prompts_are_the_small_template(case):
    think = think_of(case.get("think"))
    assert gemma4_jinja("small", case["messages"], case.get("tools"), think) == case["expected"]


@pytest.mark.parametrize("case", cases("gemma4.json", "render_known_differences"))
def test_gemma4_known_differences_from_the_template(case):
    jinja = gemma4_jinja("small", case["messages"], case["tools"], None)
    assert jinja != gemma4("small").render(case["messages"], case["tools"], None)
    assert case["wantJinjaFrag"] in jinja


# -- laguna ---------------------------------------------------------------------------------

LAGUNA = {
    "v2": ("laguna_v2_chat_template.jinja2", LagunaRenderer),
    "v8": ("laguna_v8_chat_template.jinja2", LagunaV8Renderer),
}


def laguna_jinja(variant: str, messages, tools, think) -> str:
    shaped = []
    for m in messages or ():
        item = {"role": m.get("role") or "", "content": m.get("content") or ""}
        if m.get("thinking"):
            item["reasoning"] = item["reasoning_content"] = m["thinking"]
        calls = [
            {"function": {"name": c["function"]["name"], "arguments": arguments(c, True)}}
            for c in m.get("tool_calls") or ()
        ]
        if calls:
            item["tool_calls"] = calls
        shaped.append(item)
    kwargs = {"messages": shaped, "add_generation_prompt": True}
    if tools:
        kwargs["tools"] = go_tools(tools)
    if think is not None:
        kwargs["enable_thinking"] = think_bool(think)
    return template(LAGUNA[variant][0], True).render(**kwargs)


@pytest.mark.parametrize(
    "variant,case",
    [
        pytest.param(variant, p.values[0], id=f"{variant}-{p.id}")
        for variant, table in (("v2", "render"), ("v8", "render_v8"))
        for p in cases("laguna.json", table)
    ],
)
def test_laguna_expected_prompts_are_its_templates(variant, case):
    think = think_of(case.get("think"))
    assert laguna_jinja(variant, case.get("messages"), case.get("tools"), think) == case["want"]


@pytest.mark.parametrize("variant", LAGUNA)
@pytest.mark.parametrize("case", cases("laguna.json", "render_parity"))
def test_laguna_matches_its_templates(variant, case):
    think = think_of(case.get("think"))
    got = LAGUNA[variant][1]().render(case["messages"], case.get("tools"), think)
    assert got == laguna_jinja(variant, case["messages"], case.get("tools"), think)


def test_laguna_v2_continues_a_prefill_where_its_template_closes_it():
    prefill = DATA["laguna"]["transcribed"]["render_prefill"]
    jinja = laguna_jinja("v2", prefill["messages"], None, None)
    assert jinja == prefill["want"] + "</assistant>\n<assistant>\n</think>"
    assert jinja != LagunaRenderer().render(prefill["messages"], None, None)


# -- glimmer --------------------------------------------------------------------------------

DATE = "2026-07-29"


def glimmer_content(m: dict):
    images = len(m.get("images") or ())
    if not images:
        return m.get("content") or ""
    parts = [{"type": "image"}] * images
    return parts + ([{"type": "text", "text": m["content"]}] if m.get("content") else [])


def glimmer_jinja(messages, tools, think) -> str:
    shaped = []
    for m in messages or ():
        item = {"role": m.get("role") or "", "content": glimmer_content(m)}
        for key, field in (
            ("tool_name", "name"),
            ("tool_call_id", "tool_call_id"),
            ("thinking", "reasoning_content"),
        ):
            if m.get(key):
                item[field] = m[key]
        calls = [
            {
                **({"id": c["id"]} if c.get("id") else {}),
                "function": {
                    "index": c["function"].get("index", 0),
                    "name": c["function"]["name"],
                    "arguments": arguments(c, True),
                },
            }
            for c in m.get("tool_calls") or ()
        ]
        if calls:
            item["tool_calls"] = calls
        shaped.append(item)
    kwargs = {
        "messages": shaped,
        "tools": go_tools(tools) if tools else None,
        "bos_token": "<|begin_of_text|>",
        "add_generation_prompt": True,
        "current_date": DATE,
    }
    if think is not None:
        kwargs["reasoning_strength"] = (
            "none" if not think_bool(think) else think if isinstance(think, str) else "high"
        )
    return template("glimmer_chat_template.jinja", True).render(**kwargs)


def glimmer() -> GlimmerRenderer:
    made = GlimmerRenderer()
    made.image_tags, made.current_date = False, DATE
    return made


def with_images(messages):
    return [{**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m for m in messages]


@pytest.mark.parametrize(
    "case", cases("glimmer.json", "render") + cases("glimmer.json", "render_parity")
)
def test_glimmer_matches_its_template(case):
    messages, think = with_images(case["messages"]), think_of(case.get("think"))
    jinja = glimmer_jinja(messages, case.get("tools"), think)
    assert glimmer().render(messages, case.get("tools"), think) == jinja
    if "expected" in case:
        assert jinja == case["expected"]


def test_glimmer_continues_a_last_thought_the_template_would_close():
    tables = DATA["glimmer"]["tables"]
    messages = tables["render_continuation_messages"]["cases"]
    closed = tables["render_continuation"]["cases"].removesuffix("<|start|>assistant")
    closed += "<|start|>assistant to=user<|message|><|eot|><|start|>assistant"
    assert glimmer_jinja(messages, None, None) == closed
    # the template's own form of an unfinished thought gives the renderer's prompt
    unfinished = [
        {"role": "user", "content": "Solve"},
        {
            "role": "assistant",
            "content": "Private reasoning.",
            "recipient": "self",
            "end_turn": False,
        },
    ]
    kwargs = {"bos_token": "<|begin_of_text|>", "add_generation_prompt": True, "current_date": DATE}
    jinja = template("glimmer_chat_template.jinja", True).render(
        messages=unfinished, tools=None, **kwargs
    )
    assert jinja == tables["render_continuation"]["cases"]
    assert glimmer().render(messages, None, None) == tables["render_continuation"]["cases"]


def test_glimmer_tool_loop_prompts_match_the_template():
    trip = DATA["glimmer"]["transcribed"]["round_trip"]
    messages, tools = list(trip["messages"]), trip["tools"]
    for turn in trip["turns"]:
        assert glimmer().render(messages, tools, None) == glimmer_jinja(messages, tools, None)
        parser = GlimmerParser()
        parser.init(tools, None, None)
        parsed = parser.add(turn["output"], True)
        calls = [{**c, "id": turn.get("call_id")} for c in parsed.tool_calls]
        message = {"role": "assistant", "content": parsed.content, "thinking": parsed.thinking}
        messages.append({**message, "tool_calls": calls} if calls else message)
        if "result" in turn:
            messages.append(
                {"role": "tool", "tool_call_id": turn["call_id"], "content": turn["result"]}
            )
    assert glimmer().render(messages, tools, None) == glimmer_jinja(messages, tools, None)
