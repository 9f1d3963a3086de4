"""The glimmer renderer and parser against Ollama's test cases (model/renderers/glimmer_test.go,
glimmer_reference_test.go, model/parsers/glimmer_test.go), in tests/reference/renderers/glimmer.json."""

from __future__ import annotations

import json

import pytest

from ollamakit import rendering
from ollamakit_renderers.glimmer import BOS, GlimmerParser, GlimmerRenderer, resolve
from renderer_reference import FOLDER, cases, think_of

DATA = json.loads((FOLDER / "glimmer.json").read_text())
TABLES, TRANSCRIBED = DATA["tables"], DATA["transcribed"]
TOOLS = TRANSCRIBED["tools"]


def renderer(tags: bool = False, date: str | None = None) -> GlimmerRenderer:
    made = GlimmerRenderer()
    made.image_tags, made.current_date = tags, date
    return made


def with_images(messages: list[dict]) -> list[dict]:
    return [{**m, "images": [b"x"] * len(m["images"])} if m.get("images") else m for m in messages]


@pytest.mark.parametrize("case", cases("glimmer.json", "render"))
def test_render(case):
    made = renderer(date=TABLES["render"]["setup"]["currentDate"])
    got = made.render(with_images(case["messages"]), case.get("tools"), think_of(case.get("think")))
    assert got == case["expected"]


def test_a_last_thought_is_continued():
    table = TABLES["render_continuation"]
    made = renderer(date=table["setup"]["currentDate"])
    assert (
        made.render(TABLES["render_continuation_messages"]["cases"], None, None) == table["cases"]
    )


@pytest.mark.parametrize("case", cases("glimmer.json", "render_images"))
def test_images(case):
    got = renderer(tags=bool(case.get("renderTags"))).render(
        with_images(case["messages"]), None, None
    )
    assert case["wantContent"] in got


@pytest.mark.parametrize("case", cases("glimmer.json", "render_strength"))
def test_reasoning_strength(case):
    got = renderer().render(
        [{"role": "user", "content": "Hello"}], None, think_of(case.get("think"))
    )
    assert case["want"] in got


def test_the_date_defaults_to_today():
    import datetime

    got = renderer().render([{"role": "user", "content": "Hi"}], None, None)
    assert f"Current date: {datetime.date.today().isoformat()}." in got


@pytest.mark.parametrize(
    "case", TRANSCRIBED["render"], ids=[c["from"] for c in TRANSCRIBED["render"]]
)
def test_render_transcribed(case):
    got = renderer().render(case["messages"], None, None)
    assert all(part in got for part in case["contains"])


def test_the_name_is_registered_with_its_bos():
    made = rendering.load_renderer("glimmer")
    assert isinstance(made, GlimmerRenderer) and made.leading_bos == BOS


def checked(calls: list, want: list) -> None:
    assert len(calls) == len(want)
    for call, expected in zip(calls, want):
        function = call["function"]
        assert function["name"] == expected["name"]
        if "index" in expected:
            assert function["index"] == expected["index"]
        for key, value in expected["arguments"].items():
            assert function["arguments"][key] == value
            assert type(function["arguments"][key]) is type(value)


def fed(case: dict, chunks: list[str]):
    parser = rendering.load_parser("glimmer")
    parser.init(TOOLS.get(case.get("tools")), None, case.get("think"))
    content = thinking = ""
    calls: list = []
    for n, chunk in enumerate(chunks):
        parsed = parser.add(chunk, n == len(chunks) - 1)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    return content, thinking, calls


def case_id(case: dict) -> str:
    return case["from"] + (f"[{case['case']}]" if "case" in case else "")


@pytest.mark.parametrize(
    "case", TRANSCRIBED["parse"], ids=[case_id(c) for c in TRANSCRIBED["parse"]]
)
def test_parse(case):
    text = case["input"]
    splits = (
        [[text[:n], text[n:]] for n in range(len(text) + 1)]
        if case.get("split_everywhere")
        else [[text]]
    )
    for chunks in splits:
        if "error" in case:
            with pytest.raises(ValueError, match=case["error"]):
                fed(case, chunks)
            continue
        content, thinking, calls = fed(case, chunks)
        assert (content, thinking) == (case["content"], case["thinking"]), chunks
        checked(calls, case["calls"])


def test_a_split_end_of_turn_is_held_back():
    parser = GlimmerParser()
    parser.init(None, None, None)
    for step in TRANSCRIBED["steps"][0]["steps"]:
        assert parser.add(step["chunk"], step["done"]).content == step["content"]


@pytest.mark.parametrize("case", cases("glimmer.json", "literal_start"))
def test_a_literal_start_token_stays_text(case):
    chunks = [" to=" + case["recipient"] + "<|message|>Use `<", "|", "start", "|>` here."]
    content, thinking, calls = fed({}, chunks)
    assert (content, thinking, calls) == (case.get("content", ""), case.get("thinking", ""), [])


@pytest.mark.parametrize("seed", TRANSCRIBED["fuzz_seeds"])
def test_fuzz_seeds_call_only_declared_tools_in_order(seed):
    for at in (0, len(seed) // 2):
        try:
            _, _, calls = fed({"tools": "echo"}, [seed[:at], seed[at:]])
        except ValueError:
            continue
        assert all(c["function"]["name"] == "echo" for c in calls)
        assert [c["function"]["index"] for c in calls] == list(range(len(calls)))


@pytest.mark.parametrize("name,want,ok", TRANSCRIBED["resolve"]["cases"])
def test_tool_names_resolve_through_their_own_namespace_only(name, want, ok):
    tools = {n: {"function": {"name": n}} for n in TRANSCRIBED["resolve"]["tools"]}
    assert resolve(tools, name) == (want if ok else None)


def test_a_tool_loop_round_trips():
    trip = TRANSCRIBED["round_trip"]
    messages, tools = list(trip["messages"]), trip["tools"]
    for turn in trip["turns"]:
        assert (
            renderer(date="2026-07-29").render(messages, tools, None).endswith("<|start|>assistant")
        )
        parser = GlimmerParser()
        parser.init(tools, None, None)
        parsed = parser.add(turn["output"], True)
        assert parsed.thinking == turn["thinking"] and parsed.content == turn.get("content", "")
        checked(parsed.tool_calls, turn["calls"])
        calls = [{**c, "id": turn.get("call_id")} for c in parsed.tool_calls]
        message = {"role": "assistant", "content": parsed.content, "thinking": parsed.thinking}
        messages.append({**message, "tool_calls": calls} if calls else message)
        if "result" in turn:
            messages.append(
                {"role": "tool", "tool_call_id": turn["call_id"], "content": turn["result"]}
            )
    prompt = renderer(date="2026-07-29").render(messages, tools, None)
    assert prompt.endswith("<|start|>assistant")
    assert '<|start|>tool read<|message|><tool_output name="read">' in prompt


def test_tool_json_is_not_html_escaped():
    # Ollama writes the tools with Transformers' tojson: <, > and & as they are
    tool = {
        "type": "function",
        "function": {"name": "run", "description": "a <b> & c", "parameters": {"type": "object"}},
    }
    got = renderer(date="2026-07-29").render([{"role": "user", "content": "Hi"}], [tool], None)
    assert '"description": "a <b> & c"' in got and "\\u003c" not in got
