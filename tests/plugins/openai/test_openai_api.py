"""The /v1 endpoints' exact shapes and errors (spec §9), over the fake engine."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

GREEDY = {"temperature": 0}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}
TOOLS_TEMPLATE = (
    '{{ if .Tools }}{{ end }}{{ range .Messages }}{{ if eq .Role "tool" }}R({{ .ToolName }}): {{ .Content }}\n'
    "{{ else if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}"
    "</tool_call>\n{{ else }}{{ .Content }}{{ end }}{{ end }}"
)
TOOLS_SCRIPT = (
    'Q: weather?\nA: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
)


def events(result) -> list:
    """The SSE ``data:`` payloads, decoded (``[DONE]`` kept as the string)."""
    assert result.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in result.text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks)
    return [b[6:] if b[6:] == "[DONE]" else json.loads(b[6:]) for b in blocks]


def chat(setup, **body):
    return setup.client.simulate_post("/v1/chat/completions", json={"model": "fake", **body})


def user(text):
    return [{"role": "user", "content": text}]


def test_chat_completion_shape(fake):
    reply = chat(fake, messages=user("Q: two\nA:"), temperature=0, stop="\n")
    assert reply.status_code == 200
    body = reply.json
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert (
        body["system_fingerprint"] == "fp_ollama"
        and body["model"] == "fake"
        and isinstance(body["created"], int)
    )
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": " the second answer."},
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_order(fake):
    reply = chat(
        fake,
        messages=user("Q: two\nA:"),
        temperature=0,
        stop=["\n"],
        stream=True,
        stream_options={"include_usage": True},
    )
    *chunks, finish, usage, done = events(reply)
    assert done == "[DONE]"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(
        c["object"] == "chat.completion.chunk" and c["choices"][0]["finish_reason"] is None
        for c in chunks
    )
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == " the second answer."
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert (
        len({c["id"] for c in [*chunks, finish, usage]}) == 1
        and len({c["created"] for c in chunks}) == 1
    )


def test_chat_stream_without_usage(fake):
    *_, finish, done = events(
        chat(fake, messages=user("Q: one\nA:"), temperature=0, max_tokens=3, stream=True)
    )
    assert (
        done == "[DONE]"
        and finish["choices"][0]["finish_reason"] == "length"
        and "usage" not in finish
    )


@pytest.mark.parametrize(
    "body, status, message, kind",
    [
        ({"messages": []}, 400, "[] is too short - 'messages'", "invalid_request_error"),
        ({}, 400, "[] is too short - 'messages'", "invalid_request_error"),
        (
            {"model": "nope", "messages": user("x")},
            404,
            "model 'nope' not found",
            "not_found_error",
        ),
        (
            {"messages": user("x"), "temperature": "hot"},
            400,
            "invalid type for 'temperature': expected a number",
            "invalid_request_error",
        ),
        (
            {
                "messages": user("x"),
                "response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}},
            },
            400,
            'format schema cannot be enforced: Unimplemented keys: ["not"]',
            "invalid_request_error",
        ),
        ({"messages": user("x"), "reasoning_effort": "huge"}, 400, None, "invalid_request_error"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            400,
            "image URLs are not currently supported, please use base64 encoded data instead",
            "invalid_request_error",
        ),
    ],
)
def test_chat_errors_use_the_openai_envelope(fake, body, status, message, kind):
    reply = chat(fake, **body)
    assert reply.status_code == status
    error = reply.json["error"]
    assert error["type"] == kind and error["param"] is None and error["code"] is None
    if message is not None:
        assert error["message"] == message


def test_missing_body_is_an_envelope(fake):
    reply = fake.client.simulate_post("/v1/chat/completions", body=b"")
    assert reply.status_code == 400 and reply.json["error"]["message"] == "missing request body"


def test_response_format_json_schema(fake):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    reply = chat(
        fake,
        messages=user("Q: one\nA:"),
        response_format={"type": "json_schema", "json_schema": {"name": "flag", "schema": schema}},
    )
    assert set(json.loads(reply.json["choices"][0]["message"]["content"])) == {"ok"}
    reply = chat(fake, messages=user("Q: one\nA:"), seed=1, response_format={"type": "json_object"})
    assert reply.json["choices"][0]["message"]["content"].startswith("{")


def test_images_become_native_images(fake):
    image = base64.b64encode(b"\x89PNG fake").decode()
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
    ]
    reply = chat(fake, messages=[{"role": "user", "content": content}])
    # The image reached the native chat as an image: the fake model cannot see, and the native
    # layer refuses it as Ollama's runner does (tests/plugins/ollama_api has the models that can).
    assert reply.status_code == 400
    assert reply.json["error"]["message"] == "this model is missing data required for image input"


@pytest.fixture
def tooly(make_fake):
    setup = make_fake()
    setup.model("fake", TOOLS_SCRIPT, template=TOOLS_TEMPLATE)
    return setup


def test_tool_calls_non_stream_and_stream(tooly):
    body = {"messages": user("Q: weather?\nA:"), "tools": [WEATHER_TOOL], "temperature": 0}
    choice = chat(tooly, **body).json["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["index"] == 0 and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    *chunks, finish, done = events(chat(tooly, stream=True, **body))
    calls = [
        c["choices"][0]["delta"]["tool_calls"]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert len(calls) == 1 and calls[0][0]["function"]["name"] == "get_weather"
    assert finish["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_messages_become_native_messages(tooly):
    from ollamakit_openai.chat import native_messages

    history = [
        *user("Q: weather?\nA:"),
        {
            "role": "assistant",
            "content": None,
            "reasoning": "need weather",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    ]
    assert native_messages(history)[1:] == [
        {
            "role": "assistant",
            "content": "",
            "thinking": "need weather",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}
            ],
        },
        {"role": "tool", "content": "rain", "tool_name": "get_weather", "tool_call_id": "call_1"},
    ]
    assert chat(tooly, messages=history, tools=[WEATHER_TOOL], temperature=0).status_code == 200
    bad = chat(
        tooly,
        messages=[
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}],
            }
        ],
    )
    assert bad.status_code == 400 and bad.json["error"]["type"] == "invalid_request_error"


def test_logprobs(fake):
    choice = chat(
        fake,
        messages=user("Q: one\nA:"),
        temperature=0,
        max_tokens=4,
        logprobs=True,
        top_logprobs=2,
    ).json["choices"][0]
    content = choice["logprobs"]["content"]
    assert len(content) == 4 and all(
        len(e["top_logprobs"]) == 2 and e["logprob"] <= 0 for e in content
    )


def test_completions(fake):
    reply = fake.client.simulate_post(
        "/v1/completions",
        json={"model": "fake", "prompt": "Q: one\nA:", "temperature": 0, "stop": ["\n"]},
    )
    body = reply.json
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"text": " the first answer.", "index": 0, "finish_reason": "stop"}]
    stream = events(
        fake.client.simulate_post(
            "/v1/completions",
            json={
                "model": "fake",
                "prompt": "Q: one\nA:",
                "temperature": 0,
                "stop": ["\n"],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    )
    *chunks, last, done = stream
    assert done == "[DONE]" and last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert all(c["object"] == "text_completion" and c["usage"]["total_tokens"] == 0 for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == " the first answer."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    bad = fake.client.simulate_post(
        "/v1/completions", json={"model": "fake", "prompt": "x", "stop": ["a", 1]}
    )
    assert (
        bad.status_code == 400
        and bad.json["error"]["message"] == "invalid type for 'stop' field: int"
    )


def test_models(fake, make_fake):
    listed = fake.client.simulate_get("/v1/models").json
    assert listed["object"] == "list"
    [entry] = listed["data"]
    assert (
        entry["id"] == "fake:latest"
        and entry["object"] == "model"
        and entry["owned_by"] == "library"
    )
    assert isinstance(entry["created"], int)
    # retrieving echoes the id as asked for, and its namespace is the owner (Ollama's ToModel)
    assert fake.client.simulate_get("/v1/models/fake").json == {**entry, "id": "fake"}
    assert fake.client.simulate_get("/v1/models/fake:latest").json == entry
    missing = fake.client.simulate_get("/v1/models/someone/missing:v2")
    assert missing.status_code == 404 and missing.json["error"]["type"] == "not_found_error"
    assert make_fake().client.simulate_get("/v1/models").json == {"object": "list", "data": None}


def test_embeddings(engine):
    def embed(**body):
        return engine.client.simulate_post("/v1/embeddings", json={"model": "tiny", **body})

    floats = embed(input=["hello", "world"]).json
    assert (
        floats["object"] == "list"
        and floats["model"] == "tiny"
        and floats["usage"]["prompt_tokens"] > 0
    )
    assert [d["index"] for d in floats["data"]] == [0, 1] and all(
        d["object"] == "embedding" for d in floats["data"]
    )
    vector = np.array(floats["data"][0]["embedding"])
    assert vector.shape == (32,) and abs(np.linalg.norm(vector) - 1) < 1e-5
    packed = embed(input="hello", encoding_format="base64").json["data"][0]["embedding"]
    assert np.allclose(np.frombuffer(base64.b64decode(packed), "<f4"), vector, atol=1e-6)
    assert len(embed(input="hello", dimensions=8).json["data"][0]["embedding"]) == 8
    wrong = embed(input="x", encoding_format="int8")
    assert wrong.status_code == 400 and wrong.json["error"]["message"] == (
        "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64']."
    )
    for bad in ([], None, 5):
        assert embed(input=bad).json["error"]["message"] == "invalid input"
    assert embed(model="nope", input="x").status_code == 404
