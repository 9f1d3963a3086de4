"""The official ``openai`` and ``ollama`` Python clients against a real HTTP server: chat,
streaming, tools, structured output and embeddings. The fake model answers tool calls; the
tiny random llama runs the real engine where the text itself does not matter."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import ollama
import openai
import pytest

from test_openai_api import TOOLS_SCRIPT, TOOLS_TEMPLATE, WEATHER_TOOL

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["city", "rainy", "days"],
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "rainy": {"type": "boolean"},
        "days": {"type": "array", "maxItems": 3, "items": {"enum": ["mon", "tue", "wed"]}},
    },
}


@pytest.fixture
def server(engine):
    engine.model("tooly", TOOLS_SCRIPT, template=TOOLS_TEMPLATE)
    with engine.server() as running:
        yield running


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)


@pytest.fixture
def native(server):
    return ollama.Client(host=server.url)


def test_openai_chat_and_stream(oai):
    reply = oai.chat.completions.create(
        model="fake",
        messages=[{"role": "user", "content": "Q: two\nA:"}],
        temperature=0,
        stop=["\n"],
    )
    assert reply.choices[0].message.content == " the second answer."
    assert reply.choices[0].finish_reason == "stop" and reply.usage.total_tokens > 0
    # greedy: sampling could draw the end token before the length limit
    stream = oai.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].choices == []
    assert chunks[-2].choices[0].finish_reason == "length"


def test_openai_structured_output(oai):
    for seed in range(3):
        reply = oai.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "weather as JSON"}],
            seed=seed,
            temperature=0.8,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": SCHEMA},
            },
        )
        jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_openai_tools(oai):
    reply = oai.chat.completions.create(
        model="tooly",
        messages=[{"role": "user", "content": "Q: weather?\nA:"}],
        tools=[WEATHER_TOOL],
        temperature=0,
    )
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    assert reply.choices[0].finish_reason == "tool_calls"
    streamed = list(
        oai.chat.completions.create(
            model="tooly",
            messages=[{"role": "user", "content": "Q: weather?\nA:"}],
            tools=[WEATHER_TOOL],
            temperature=0,
            stream=True,
        )
    )
    calls = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"]


def test_openai_errors_models_completions_embeddings(oai):
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="too short"):
        oai.chat.completions.create(model="fake", messages=[])
    assert {m.id for m in oai.models.list()} == {"fake:latest", "tiny:latest", "tooly:latest"}
    assert oai.models.retrieve("tiny").owned_by == "library"
    text = oai.completions.create(model="fake", prompt="Q: one\nA:", temperature=0, stop=["\n"])
    assert text.choices[0].text == " the first answer."
    vectors = oai.embeddings.create(
        model="tiny", input=["a", "b"]
    )  # the client asks for base64 and decodes it
    assert len(vectors.data) == 2 and abs(np.linalg.norm(vectors.data[0].embedding) - 1) < 1e-5


def test_ollama_client_chat_stream_tools_format_embed(native):
    reply = native.chat(
        model="fake",
        messages=[{"role": "user", "content": "Q: one\nA:"}],
        options={"temperature": 0, "stop": ["\n"]},
    )
    assert reply.message.content == " the first answer."
    parts = list(
        native.chat(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            options={"num_predict": 4, "temperature": 0},
        )
    )  # greedy, so no run can draw the end token early
    assert parts[-1].done and parts[-1].done_reason == "length"
    tool = native.chat(
        model="tooly",
        messages=[{"role": "user", "content": "Q: weather?\nA:"}],
        tools=[WEATHER_TOOL],
        options={"temperature": 0},
    )
    assert tool.message.tool_calls[0].function.name == "get_weather"
    assert tool.message.tool_calls[0].function.arguments == {"city": "Paris"}
    for seed in range(3):
        shaped = native.chat(
            model="tiny",
            messages=[{"role": "user", "content": "weather"}],
            format=SCHEMA,
            options={"seed": seed},
        )
        jsonschema.validate(json.loads(shaped.message.content), SCHEMA)
        generated = native.generate(
            model="tiny", prompt="weather", format=SCHEMA, options={"seed": seed}
        )
        jsonschema.validate(json.loads(generated.response), SCHEMA)
    with pytest.raises(ollama.ResponseError) as refused:
        native.chat(model="fake", messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    assert refused.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as refused:
        native.chat(model="fake", messages=[{"role": "user", "content": "x"}], think=True)
    assert refused.value.error == '"fake" does not support thinking'
    embedded = native.embed(model="tiny", input=["a", "b"])
    assert len(embedded.embeddings) == 2
