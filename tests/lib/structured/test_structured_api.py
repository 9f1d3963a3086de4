"""Structured outputs, tool calls and thinking through /api/generate and /api/chat, on the fake
engine (a model that recites a script, so answers are predictable)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from ollamakit_scheduler.fixtures import fake, make_fake  # noqa: F401 (fixtures)

from structured_schemas import SCHEMAS, UNENFORCEABLE

TOOLS_TEMPLATE = (
    '{{ if .Tools }}{{ end }}{{ range .Messages }}{{ if eq .Role "tool" }}R: {{ .Content }}\n'
    '{{ else if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
    '"arguments": {{ .Function.Arguments }}}{{ end }}</tool_call>\n{{ else }}{{ .Content }}{{ end }}{{ end }}'
)
TOOLS_SCRIPT = (
    'Q: weather?\nA: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
)
THINKING_TEMPLATE = "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"
THINKING_SCRIPT = 'Q: sum?\nA: <think>two plus two is four</think>{"sum": 4}'
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}


def post(setup, path, **body):
    return setup.client.simulate_post(path, json=body)


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "name", ["person", "tags_array", "refs_and_defs", "one_of_shapes", "nullable"]
)
def test_generate_and_chat_answers_match_the_schema(fake, name):
    schema = SCHEMAS[name]
    for seed in range(3):
        options = {"temperature": 0.8, "seed": seed}
        reply = post(
            fake,
            "/api/generate",
            model="fake",
            prompt="Q: one\nA:",
            format=schema,
            stream=False,
            options=options,
        ).json
        jsonschema.validate(json.loads(reply["response"]), schema)
        assert reply["done_reason"] == "stop"
        chat = post(
            fake,
            "/api/chat",
            model="fake",
            messages=[{"role": "user", "content": "Q: two"}],
            format=schema,
            stream=False,
            options=options,
        ).json
        jsonschema.validate(json.loads(chat["message"]["content"]), schema)


def test_streamed_chunks_join_into_valid_json(fake):
    chunks = lines(
        post(
            fake,
            "/api/chat",
            model="fake",
            messages=[{"role": "user", "content": "hi"}],
            format=SCHEMAS["array_of_objects"],
            options={"seed": 3},
        )
    )
    assert chunks[-1]["done"] is True
    text = "".join(c["message"]["content"] for c in chunks)
    jsonschema.validate(json.loads(text), SCHEMAS["array_of_objects"])


def test_format_json_gives_an_object(fake):
    """Any object: an answer that ends is a JSON object; one cut by ``num_predict`` still began as one."""
    endings = []
    for seed in range(4):
        reply = post(
            fake,
            "/api/generate",
            model="fake",
            prompt="Q: one\nA:",
            format="json",
            stream=False,
            options={"seed": seed, "num_predict": 100},
        ).json
        endings.append(reply["done_reason"])
        if reply["done_reason"] == "stop":
            assert isinstance(json.loads(reply["response"]), dict)
        assert reply["response"].startswith("{")
    assert "stop" in endings


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/generate", {"prompt": "x"}),
        ("/api/chat", {"messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_format_errors(fake, path, body):
    bad = post(fake, path, model="fake", format="xml", **body)
    assert bad.status_code == 400
    assert bad.json == {
        "error": 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
    }
    for schema in UNENFORCEABLE.values():
        refused = post(fake, path, model="fake", format=schema, **body)
        assert refused.status_code == 400
        assert refused.json["error"].startswith("format schema cannot be enforced: ")


def test_logprobs_with_a_format(fake):
    reply = post(
        fake,
        "/api/generate",
        model="fake",
        prompt="Q: one\nA:",
        format=SCHEMAS["boolean_flag"],
        logprobs=True,
        top_logprobs=2,
        stream=False,
    ).json
    entries = reply["logprobs"]
    assert "".join(e["token"] for e in entries) == reply["response"]
    assert all(
        len(e["top_logprobs"]) == 2 and list(e["token"].encode()) == e["bytes"] for e in entries
    )
    assert post(fake, "/api/chat", model="fake", messages=[], top_logprobs=21).json == {
        "error": "top_logprobs must be between 0 and 20"
    }


# -- tools ---------------------------------------------------------------------------------


@pytest.fixture
def tooly(make_fake):
    setup = make_fake()
    setup.model("tooly", TOOLS_SCRIPT, template=TOOLS_TEMPLATE)
    setup.model("fake")
    return setup


def test_tool_call_becomes_message_tool_calls(tooly):
    reply = post(
        tooly,
        "/api/chat",
        model="tooly",
        messages=[{"role": "user", "content": "Q: weather?\nA:"}],
        tools=[WEATHER_TOOL],
        stream=False,
        options={"temperature": 0},
    ).json
    message = reply["message"]
    assert message["content"].strip() == ""
    [call] = message["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}


def test_streamed_tool_call_arrives_whole(tooly):
    chunks = lines(
        post(
            tooly,
            "/api/chat",
            model="tooly",
            messages=[{"role": "user", "content": "Q: weather?\nA:"}],
            tools=[WEATHER_TOOL],
            options={"temperature": 0},
        )
    )
    with_calls = [c for c in chunks if c["message"].get("tool_calls")]
    assert len(with_calls) == 1 and with_calls[0]["done"] is False
    assert "<tool_call>" not in "".join(c["message"]["content"] for c in chunks)


def test_tool_results_in_the_history(tooly):
    history = [
        {"role": "user", "content": "Q: weather?\nA:"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    debug = post(
        tooly,
        "/api/chat",
        model="tooly",
        messages=history,
        tools=[WEATHER_TOOL],
        stream=False,
        _debug_render_only=True,
    ).json
    rendered = debug["_debug_info"]["rendered_template"]
    assert (
        '<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>' in rendered
    )
    assert rendered.endswith("R: sunny\n")


def test_tools_need_the_capability(tooly):
    refused = post(
        tooly,
        "/api/chat",
        model="fake",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER_TOOL],
    )
    assert refused.status_code == 400
    assert refused.json == {
        "error": "registry.ollama.ai/library/fake:latest does not support tools"
    }


def test_without_tools_the_text_is_plain_content(tooly):
    reply = post(
        tooly,
        "/api/chat",
        model="tooly",
        messages=[{"role": "user", "content": "Q: weather?\nA:"}],
        stream=False,
        options={"temperature": 0},
    ).json
    assert "tool_calls" not in reply["message"] and "<tool_call>" in reply["message"]["content"]


# -- thinking ------------------------------------------------------------------------------


@pytest.fixture
def thinker(make_fake):
    setup = make_fake()
    setup.model("thinker", THINKING_SCRIPT, template=THINKING_TEMPLATE)
    setup.model("fake")
    return setup


def test_thinking_is_separated_and_on_by_default(thinker):
    chat = post(
        thinker,
        "/api/chat",
        model="thinker",
        messages=[{"role": "user", "content": "Q: sum?\nA: "}],
        stream=False,
        options={"temperature": 0},
    ).json
    assert chat["message"]["thinking"] == "two plus two is four"
    assert chat["message"]["content"] == '{"sum": 4}'
    generated = post(
        thinker,
        "/api/generate",
        model="thinker",
        prompt="Q: sum?\nA: ",
        stream=False,
        options={"temperature": 0},
    ).json
    assert generated["thinking"] == "two plus two is four" and generated["response"] == '{"sum": 4}'


def test_think_false_leaves_the_text_alone(thinker):
    chat = post(
        thinker,
        "/api/chat",
        model="thinker",
        messages=[{"role": "user", "content": "Q: sum?\nA: "}],
        think=False,
        stream=False,
        options={"temperature": 0},
    ).json
    assert "thinking" not in chat["message"] and chat["message"]["content"].startswith("<think>")


def test_thinking_then_a_format(thinker):
    schema = {
        "type": "object",
        "properties": {"sum": {"type": "integer"}},
        "required": ["sum"],
        "additionalProperties": False,
    }
    chunks = lines(
        post(
            thinker,
            "/api/chat",
            model="thinker",
            messages=[{"role": "user", "content": "Q: sum?\nA: "}],
            format=schema,
            options={"temperature": 0},
        )
    )
    assert "".join(c["message"].get("thinking", "") for c in chunks) == "two plus two is four"
    assert json.loads("".join(c["message"]["content"] for c in chunks)) == {"sum": 4}


def test_generate_holds_the_format_from_the_first_token(thinker):
    """Ollama's generate runs one pass with the format from the first token: the thinker
    cannot write ``<think>``, so its Go template's tags find no thinking and the JSON is the
    response (chat, the same model and format, thinks first)."""
    import ollama

    with thinker.server() as server:
        reply = ollama.Client(host=server.url).generate(
            model="thinker", prompt="Q: sum?\nA: ", format=SUM_SCHEMA, options={"temperature": 0}
        )
    assert not reply.thinking
    jsonschema.validate(json.loads(reply.response), SUM_SCHEMA)
    assert reply.eval_count == len(reply.response)  # one pass: every token is the answer's


# The assistant's turns render as "R: ...", so that the fake model, asked again with its own
# thinking as the assistant's turn, recites the script's second line
REASKED_TEMPLATE = (
    '{{ range .Messages }}{{ if eq .Role "assistant" }}R: {{ if .Thinking }}<think>{{ .Thinking }}'
    "</think>{{ end }}{{ .Content }}{{ else }}{{ .Content }}{{ end }}{{ end }}"
)
REASKED_SCRIPT = 'Q: sum?\nA: <think>four</think>The sum is 4.\nR: <think>four</think>{"sum": 4}\n'
SUM_SCHEMA = {
    "type": "object",
    "properties": {"sum": {"type": "integer"}},
    "required": ["sum"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_a_format_after_thinking_asks_again_with_the_thinking(make_fake, path):
    """As Ollama does: the model thinks unconstrained; at its first answer text the answer is
    dropped, the thinking becomes the assistant's turn of the conversation, and the model is
    asked again with the format held from the first token; the reply's counts are the second
    pass's."""
    setup = make_fake()
    setup.model("reasker", REASKED_SCRIPT, template=REASKED_TEMPLATE)
    messages = [{"role": "user", "content": "Q: sum?\nA: "}]
    if path == "/api/chat":
        chunks = lines(
            post(
                setup,
                path,
                model="reasker",
                messages=messages,
                format=SUM_SCHEMA,
                think=True,
                options={"temperature": 0},  # the fake model follows its script greedily
            )
        )
        thinking = "".join(c["message"].get("thinking", "") for c in chunks)
        content = "".join(c["message"]["content"] for c in chunks)
        assert chunks[-1]["done"] and chunks[-1]["eval_count"] == len('{"sum": 4}')
    else:
        body = post(
            setup,
            path,
            model="reasker",
            messages=messages,
            reasoning_effort="high",
            temperature=0,  # the fake model follows its script greedily
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": SUM_SCHEMA},
            },
        ).json
        # the counts are the second pass's, as in Ollama
        assert body["usage"]["completion_tokens"] == len('{"sum": 4}')
        message = body["choices"][0]["message"]
        thinking, content = message["reasoning"], message["content"]
    assert thinking == "four"
    assert content == '{"sum": 4}'


def test_without_thinking_the_format_holds_from_the_first_token(make_fake):
    setup = make_fake()
    setup.model("reasker", REASKED_SCRIPT, template=REASKED_TEMPLATE)
    reply = post(
        setup,
        "/api/chat",
        model="reasker",
        messages=[{"role": "user", "content": "Q: sum?\nA: "}],
        format=SUM_SCHEMA,
        think=False,
        stream=False,
    ).json
    assert "thinking" not in reply["message"]
    jsonschema.validate(json.loads(reply["message"]["content"]), SUM_SCHEMA)


@pytest.mark.parametrize("think", [True, "high"])
def test_thinking_needs_the_capability(thinker, think):
    for path, body in (
        ("/api/chat", {"messages": [{"role": "user", "content": "x"}]}),
        ("/api/generate", {"prompt": "x"}),
    ):
        refused = post(thinker, path, model="fake", think=think, **body)
        assert refused.status_code == 400 and refused.json == {
            "error": '"fake" does not support thinking'
        }
    assert (
        post(
            thinker, "/api/generate", model="fake", prompt="Q: one\nA:", think=False, stream=False
        ).status_code
        == 200
    )


def test_who_thinks_before_a_format(monkeypatch):
    """Ollama's rule: a thinking model read by its built-in parser (unless think is false),
    or by its Go template's tags with think on; a Jinja-template model (Ollama's native chat,
    llama-server's one pass) and a model that cannot think are held in one pass."""
    import importlib
    from types import SimpleNamespace

    from ollamakit.lib.structured import OutputParser
    from ollamakit.rendering import ParsedStream

    chat = importlib.import_module("ollamakit.inference.chat")
    caps = {"thinking", "completion"}
    monkeypatch.setattr(chat, "capabilities", lambda model: caps)
    go, jinja = SimpleNamespace(template="{{ .Prompt }}"), SimpleNamespace(template=None)
    thinking = OutputParser(thinking_tags=("<think>", "</think>"))
    plain = OutputParser(tool_tag="<tool_call>")
    builtin = ParsedStream(
        SimpleNamespace(has_thinking_support=True, answer_after="x", preserved_tokens=())
    )
    assert chat.thinks_before_format(go, thinking, True)
    assert not chat.thinks_before_format(jinja, thinking, True)
    assert not chat.thinks_before_format(go, plain, None)
    assert not chat.thinks_before_format(go, None, True)
    assert chat.thinks_before_format(jinja, builtin, None)
    assert chat.thinks_before_format(go, builtin, "high")
    assert not chat.thinks_before_format(go, builtin, False)
    caps.discard("thinking")
    assert not chat.thinks_before_format(go, thinking, True)
