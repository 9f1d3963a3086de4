"""Models whose config names a built-in renderer and parser (RENDERER/PARSER): the prompt comes
from the renderer and the output goes through the parser, over real HTTP with the official
client; an unknown name is refused at create."""

from __future__ import annotations

import json
import re

import ollama
import pytest

from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

# What the fake model says after a qwen3-coder prompt: a sentence, then a call in the XML format.
ANSWER = (
    "I'll check the weather.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
)
SCRIPT = "<|im_end|>\n<|im_start|>assistant\n" + ANSWER
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "days": {"type": "integer"},
            },
        },
    },
}
GREEDY = {"temperature": 0}


@pytest.fixture
def coder(make_fake):
    setup = make_fake()
    setup.model("base", script=SCRIPT)
    created = setup.client.simulate_post(
        "/api/create",
        json={
            "model": "coder",
            "from": "base",
            "renderer": "qwen3-coder",
            "parser": "qwen3-coder",
            "stream": False,
        },
    )
    assert created.status_code == 200, created.text
    return setup


def test_the_renderer_builds_the_prompt(coder):
    result = coder.client.simulate_post(
        "/api/chat",
        json={
            "model": "coder",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER],
            "_debug_render_only": True,
            "stream": False,
        },
    )
    prompt = result.json["_debug_info"]["rendered_template"]
    assert prompt.startswith("<|im_start|>system\nYou are Qwen, a helpful AI assistant")
    assert (
        "<parameter>\n<name>city</name>\n<type>string</type>\n<description>The city</description>\n</parameter>"
        in prompt
    )
    assert '<required>["city"]</required>' in prompt
    assert prompt.endswith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")


def test_the_parser_reads_the_tool_call_through_the_client(coder):
    with coder.server() as server:
        client = ollama.Client(host=server.url)
        response = client.chat(
            model="coder",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
            options=GREEDY,
        )
        streamed = list(
            client.chat(
                model="coder",
                messages=[{"role": "user", "content": "Weather in Paris?"}],
                tools=[WEATHER],
                options=GREEDY,
                stream=True,
            )
        )
    assert response.message.content == "I'll check the weather."
    (call,) = response.message.tool_calls
    assert call.function.name == "get_weather"
    assert dict(call.function.arguments) == {
        "city": "Paris",
        "days": 3,
    }  # typed by the tool's declaration
    assert "".join(c.message.content for c in streamed) == "I'll check the weather."
    assert [c.function.name for c in streamed for c in c.message.tool_calls or ()] == [
        "get_weather"
    ]


def test_the_parser_gives_the_model_its_capabilities(coder):
    shown = coder.client.simulate_post("/api/show", json={"model": "coder"}).json
    assert "tools" in shown["capabilities"]
    assert (
        "RENDERER qwen3-coder" in shown["modelfile"] and "PARSER qwen3-coder" in shown["modelfile"]
    )


@pytest.mark.parametrize(
    "field,name", [("renderer", "no-such-renderer"), ("parser", "no-such-parser")]
)
def test_an_unknown_name_is_refused_at_create(make_fake, field, name):
    setup = make_fake()
    setup.model("base")
    result = setup.client.simulate_post(
        "/api/create", json={"model": "x", "from": "base", field: name, "stream": False}
    )
    assert result.status_code == 400
    assert result.json == {"error": f'unknown {field} "{name}"'}
    assert setup.client.simulate_post("/api/show", json={"model": "x"}).status_code == 404


def test_generate_uses_the_renderer_too(coder):
    result = coder.client.simulate_post(
        "/api/generate",
        json={
            "model": "coder",
            "prompt": "Weather in Paris?",
            "_debug_render_only": True,
            "stream": False,
        },
    )
    assert result.json["_debug_info"]["rendered_template"] == (
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )


# A harmony (gpt-oss) model: a Go template with harmony's tags, the harmony parser. The fake
# model recites an analysis message, then either an answer or a call of the (renamed) tool.
HARMONY_TEMPLATE = (
    "<|start|>system<|message|>{{ range .Tools }}tool {{ .Function.Name }};{{ end }}<|end|>"
    "{{ range .Messages }}<|start|>{{ .Role }}<|message|>{{ .Content }}<|end|>{{ end }}<|start|>assistant"
)
ANSWER_SCRIPT = (
    "Say hi.assistant<|channel|>analysis<|message|>Greet back.<|end|><|start|>assistant<|channel|>final"
    "<|message|>Hi there!"
)
CALL_SCRIPT = (
    "Weather in Paris?assistant<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant"
    '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}'
)
DASHED = {**WEATHER, "function": {**WEATHER["function"], "name": "get-weather"}}


@pytest.fixture
def harmony(make_fake):
    """``oss`` answers, ``oss-tools`` calls a tool (one script each: they share harmony's headers)."""
    setup = make_fake()
    for name, script in (("oss", ANSWER_SCRIPT), ("oss-tools", CALL_SCRIPT)):
        setup.model(name + "-base", script=script, template=HARMONY_TEMPLATE)
        created = setup.client.simulate_post(
            "/api/create",
            json={"model": name, "from": name + "-base", "parser": "harmony", "stream": False},
        )
        assert created.status_code == 200, created.text
    return setup


def test_harmony_splits_thinking_from_the_answer(harmony):
    with harmony.server() as server:
        response = ollama.Client(host=server.url).chat(
            model="oss", messages=[{"role": "user", "content": "Say hi."}], options=GREEDY
        )
    assert response.message.thinking == "Greet back."
    assert response.message.content == "Hi there!"


def test_a_format_after_harmonys_thinking_opens_the_final_channel(harmony, monkeypatch):
    """With a ``format``, the analysis runs free; at the final answer's first text the model is
    asked again with its analysis as the assistant's turn and, as Ollama ends a harmony prompt
    then, the analysis closed and the final channel opened; the answer is held to the format."""
    from ollamakit_scheduler.testing import FakeRunner

    fed: list[str] = []
    forward = FakeRunner.forward

    def recorded(self, batch, should_stop=None):
        fed.extend(self.tokenizer.decode(tokens, special=True) for _, tokens in batch)
        return forward(self, batch, should_stop)

    monkeypatch.setattr(FakeRunner, "forward", recorded)
    schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string", "maxLength": 8}},
        "required": ["greeting"],
    }
    with harmony.server() as server:
        response = ollama.Client(host=server.url).chat(
            model="oss",
            messages=[{"role": "user", "content": "Say hi."}],
            format=schema,
            options=GREEDY,
        )
    assert response.message.thinking == "Greet back."
    assert set(json.loads(response.message.content)) == {"greeting"}
    asked_again = [text for text in fed if text.endswith("<|channel|>final<|message|>")]
    assert [
        text.endswith("<|end|><|start|>assistant<|channel|>final<|message|>")
        for text in asked_again
    ] == [True]


def test_harmony_renames_tools_for_the_model_and_back_for_the_client(harmony):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    shown = harmony.client.simulate_post(
        "/api/chat",
        json={
            "model": "oss-tools",
            "messages": messages,
            "tools": [DASHED],
            "_debug_render_only": True,
            "stream": False,
        },
    )
    assert (
        "tool get_weather;" in shown.json["_debug_info"]["rendered_template"]
    )  # the model sees an identifier
    with harmony.server() as server:
        response = ollama.Client(host=server.url).chat(
            model="oss-tools", messages=messages, tools=[DASHED], options=GREEDY
        )
    assert response.message.thinking == "Need the weather tool."
    (call,) = response.message.tool_calls
    assert call.function.name == "get-weather" and dict(call.function.arguments) == {
        "city": "Paris"
    }


def test_the_openai_endpoint_gets_the_parsers_tool_calls(coder):
    import openai

    with coder.server() as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)
        reply = client.chat.completions.create(
            model="coder",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
            temperature=0,
        )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather."
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris",
        "days": 3,
    }


# A Gemma 4 model (RENDERER and PARSER gemma4) whose tags are control tokens of its own: it
# thinks, then calls the tool. The parser must see its tags as text to read either.
GEMMA4_TAGS = [
    "<|turn>",
    "<turn|>",
    "<|channel>",
    "<channel|>",
    "<|tool_call>",
    "<tool_call|>",
    '<|"|>',
]
GEMMA4_SCRIPT = (
    "Weather in Paris?<turn|>\n<|turn>model\n<|channel>thought\nThe user wants the weather."
    '<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>'
)


def test_gemma4_thinks_and_calls_through_the_client(make_fake):
    setup = make_fake()
    setup.model("g4-base", script=GEMMA4_SCRIPT, specials=GEMMA4_TAGS)
    created = setup.client.simulate_post(
        "/api/create",
        json={"model": "g4", "from": "g4-base", "renderer": "gemma4", "parser": "gemma4"},
    )
    assert created.status_code == 200, created.text
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    shown = setup.client.simulate_post(
        "/api/chat",
        json={
            "model": "g4",
            "messages": messages,
            "tools": [WEATHER],
            "think": True,
            "_debug_render_only": True,
            "stream": False,
        },
    ).json["_debug_info"]["rendered_template"]
    assert shown.startswith("<bos><|turn>system\n<|think|>\n<|tool>declaration:get_weather{")
    assert shown.endswith("<|turn>user\nWeather in Paris?<turn|>\n<|turn>model\n")
    assert (
        "thinking"
        in setup.client.simulate_post("/api/show", json={"model": "g4"}).json["capabilities"]
    )
    with setup.server() as server:
        response = ollama.Client(host=server.url).chat(
            model="g4", messages=messages, tools=[WEATHER], think=True, options=GREEDY
        )
    assert response.message.thinking == "The user wants the weather."
    assert response.message.content == ""
    (call,) = response.message.tool_calls
    assert call.function.name == "get_weather"
    assert dict(call.function.arguments) == {"city": "Paris", "days": 3}


def test_the_legacy_gemma4_name_prompts_a_large_model_with_the_large_template(make_fake):
    setup = make_fake()
    setup.model("g4-base", script=GEMMA4_SCRIPT, specials=GEMMA4_TAGS)
    for name in ("g4:e2b", "g4:31b"):
        created = setup.client.simulate_post(
            "/api/create",
            json={"model": name, "from": "g4-base", "renderer": "gemma4", "parser": "gemma4"},
        )
        assert created.status_code == 200, created.text
    prompts = {
        name: setup.client.simulate_post(
            "/api/chat",
            json={
                "model": name,
                "messages": [{"role": "user", "content": "Hi"}],
                "think": False,  # a thinking model thinks unless told not to
                "_debug_render_only": True,
                "stream": False,
            },
        ).json["_debug_info"]["rendered_template"]
        for name in ("g4:e2b", "g4:31b")
    }
    assert prompts["g4:e2b"].endswith("<|turn>user\nHi<turn|>\n<|turn>model\n")
    assert prompts["g4:31b"].endswith("<|turn>model\n<|channel>thought\n<channel|>")


def _recorded_forward(monkeypatch) -> list[str]:
    """The text of every batch the fake model is fed (prompts, then each sampled token)."""
    from ollamakit_scheduler.testing import FakeRunner

    fed: list[str] = []
    forward = FakeRunner.forward

    def recorded(self, batch, should_stop=None):
        fed.extend(self.tokenizer.decode(tokens, special=True) for _, tokens in batch)
        return forward(self, batch, should_stop)

    monkeypatch.setattr(FakeRunner, "forward", recorded)
    return fed


SUM_SCHEMA = {
    "type": "object",
    "properties": {"sum": {"type": "integer"}},
    "required": ["sum"],
    "additionalProperties": False,
}


def test_generate_holds_harmonys_format_from_the_first_token(harmony, monkeypatch):
    """Ollama's generate gives the runner the format with the prompt, in one pass: gpt-oss
    cannot open its analysis channel and writes JSON straight after ``<|start|>assistant``.
    Harmony's parser, started at that header, reads the JSON as a header that never ends,
    so the reply carries neither thinking nor a response, as Ollama's does."""
    fed = _recorded_forward(monkeypatch)
    with harmony.server() as server:
        response = ollama.Client(host=server.url).generate(
            model="oss", prompt="Say hi.", format=SUM_SCHEMA, options=GREEDY
        )
    prompts = [text for text in fed if text.endswith("<|start|>assistant")]
    assert len(prompts) == 1  # one pass: never asked again after a thinking
    # each sampled token is fed back but the last (its closing brace)
    written = "".join(fed[fed.index(prompts[0]) + 1 :])
    assert re.fullmatch(r'\{"sum": -?\d+', written)  # JSON from the first token
    assert response.eval_count == len(written) + 1
    assert response.response == "" and not response.thinking
    # chat with the same model thinks first, then is held to the format
    with harmony.server() as server:
        chat = ollama.Client(host=server.url).chat(
            model="oss",
            messages=[{"role": "user", "content": "Say hi."}],
            format=SUM_SCHEMA,
            options=GREEDY,
        )
    assert chat.message.thinking == "Greet back." and set(json.loads(chat.message.content)) == {
        "sum"
    }


def test_generate_holds_qwen3s_format_from_the_first_token(make_fake, monkeypatch):
    """``qwen3-thinking`` starts inside the thinking (its prompt opens ``<think>``): with a
    format, the JSON the model must write from the first token is read as thinking, as
    Ollama's parser reads it; with ``think`` false the same JSON is the response."""
    fed = _recorded_forward(monkeypatch)
    setup = make_fake()
    setup.model("base", script="<think>add them</think>The sum is 4.")
    created = setup.client.simulate_post(
        "/api/create",
        json={"model": "q3", "from": "base", "parser": "qwen3-thinking", "stream": False},
    )
    assert created.status_code == 200, created.text
    with setup.server() as server:
        client = ollama.Client(host=server.url)
        thinking = client.generate(model="q3", prompt="sum?", format=SUM_SCHEMA, options=GREEDY)
        plain = client.generate(
            model="q3", prompt="sum?", format=SUM_SCHEMA, think=False, options=GREEDY
        )
    assert not any(text.startswith("<") for text in fed if len(text) == 1)
    assert thinking.response == "" and set(json.loads(thinking.thinking)) == {"sum"}
    assert not plain.thinking and set(json.loads(plain.response)) == {"sum"}
