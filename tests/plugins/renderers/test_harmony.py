"""The harmony parser (gpt-oss) against Ollama's own test tables (harmony/harmonyparser_test.go)."""

from __future__ import annotations

import pytest

from ollamakit_renderers.harmony import (
    FunctionNames,
    Header,
    HarmonyParser,
    MessageStream,
    parse_header,
    valid_chars,
)

from renderer_reference import cases


def event_of(go: dict) -> tuple:
    kind = go["$type"]
    if kind == "HarmonyEventMessageStart":
        return ("start",)
    if kind == "HarmonyEventMessageEnd":
        return ("end",)
    if kind == "HarmonyEventContentEmitted":
        return ("content", go["content"])
    header = go["header"]
    return (
        "header",
        Header(header.get("role", ""), header.get("channel", ""), header.get("recipient", "")),
    )


@pytest.mark.parametrize("case", cases("harmony.json", "header_parsing"))
def test_header_parsing(case):
    assert parse_header(case["in"]) == Header(
        case["wantRole"], case["wantChannel"], case["wantRecipient"]
    )


@pytest.mark.parametrize("case", cases("harmony.json", "header_event"))
def test_first_header_event(case):
    stream = MessageStream()
    if case.get("implicitStart"):
        stream.add_implicit_start()
    headers = [e[1] for e in stream.add(case["in"]) if e[0] == "header"]
    assert headers[0] == Header(case["wantRole"], case["wantChannel"], case["wantRecipient"])


@pytest.mark.parametrize("case", cases("harmony.json", "non_streaming"))
def test_events_of_whole_text(case):
    stream = MessageStream()
    if case.get("implicitStart"):
        stream.add_implicit_start()
    assert stream.add(case["in"]) == [event_of(e) for e in case["wantEvents"]]


@pytest.mark.parametrize("case", cases("harmony.json", "streaming"))
def test_events_of_streamed_text(case):
    stream = MessageStream()
    if case.get("implicitStart"):
        stream.add_implicit_start()
    for step in case["steps"]:
        assert stream.add(step["input"]) == [event_of(e) for e in step["wantEvents"] or []], step[
            "input"
        ]


@pytest.mark.parametrize("case", cases("harmony.json", "valid_chars"))
def test_tool_names_as_identifiers(case):
    assert valid_chars(case["in"]) == case["want"]


@pytest.mark.parametrize("case", cases("harmony.json", "convert_and_add"))
def test_tool_renaming_keeps_names_apart(case):
    names = FunctionNames()
    for user_name, want in zip(case["in"], case["want"]):
        assert names.convert_and_add(user_name) == want
        assert names.to_harmony[user_name] == want and names.to_user[want] == user_name


def test_many_tools_of_one_name_are_renamed_in_linear_time():
    """Each f after the first becomes the first free f_N, as Ollama's loop from f_2 finds it,
    without that loop: 20,000 tools named f (800 KB of request) took about 40 s of CPU."""
    import time

    names, start = FunctionNames(), time.process_time()
    given = ["f", "f_3", "f-2"] + ["f"] * 20_000 + ["python", "python"]
    got = [names.convert_and_add(name) for name in given]
    assert time.process_time() - start < 1
    # "f_3" and "f-2" (which reads f_2) took their names first; the fs go around them
    assert got[:6] == ["f", "f_3", "f_2", "f_4", "f_5", "f_6"]
    assert got[-3] == "f_20003" and got[-2:] == ["python", "python"]
    assert len(set(got[:-2])) == len(got) - 2


# -- the parser as the server drives it ---------------------------------------------------------


def run(parser, pieces):
    content = thinking = ""
    calls = []
    for n, piece in enumerate(pieces):
        parsed = parser.add(piece, n == len(pieces) - 1)
        content, thinking, calls = (
            content + parsed.content,
            thinking + parsed.thinking,
            calls + parsed.tool_calls,
        )
    return content, thinking, calls


def test_thinking_then_answer_streamed_token_by_token():
    parser = HarmonyParser()
    parser.init(None, None, True)
    text = "<|channel|>analysis<|message|>User greets.<|end|><|start|>assistant<|channel|>final<|message|>Hello!"
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert run(parser, pieces) == ("Hello!", "User greets.", [])


def test_a_call_of_a_renamed_tool_comes_back_by_its_own_name():
    parser = HarmonyParser()
    tools = [
        {
            "type": "function",
            "function": {"name": "get-weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    seen = parser.init(tools, None, True)
    assert (
        seen[0]["function"]["name"] == "get_weather"
        and tools[0]["function"]["name"] == "get-weather"
    )
    text = (
        "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}'
    )
    content, thinking, calls = run(parser, [text[:40], text[40:90], text[90:]])
    assert (content, thinking) == ("", "Need weather.")
    assert calls == [
        {"function": {"index": 0, "name": "get-weather", "arguments": {"city": "Paris"}}}
    ]


def test_a_prefilled_answer_continues_in_the_final_channel():
    parser = HarmonyParser()
    parser.init(None, {"role": "assistant", "content": "The answer"}, None)
    assert run(parser, [" is 4."]) == (" is 4.", "", [])


def test_unreadable_call_arguments_are_an_error():
    parser = HarmonyParser()
    parser.init(None, None, None)
    with pytest.raises(ValueError, match="error parsing tool call"):
        run(parser, ["<|channel|>commentary to=functions.f<|message|>{not json"])
