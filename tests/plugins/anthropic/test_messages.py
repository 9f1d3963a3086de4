"""``/v1/messages`` with the official ``anthropic`` client over real HTTP (waitress), checked
against Ollama 0.33's conversion (anthropic/anthropic.go, middleware/anthropic.go)."""

from __future__ import annotations

import json

import anthropic
import pytest
import requests

# temperature is no keyword of this client any more: it goes in the body
GREEDY = {"extra_body": {"temperature": 0}}
ONE_LINE = {"stop_sequences": ["\n"]}  # the fake model's script goes on after a call
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="ollama", max_retries=0)


def ask(text):
    return [{"role": "user", "content": text}]


def test_message(client):
    reply = client.messages.create(
        model="fake", max_tokens=200, messages=ask("Q: one\nA:"), **GREEDY, stop_sequences=["\n"]
    )
    assert reply.id.startswith("msg_") and reply.type == "message" and reply.role == "assistant"
    assert reply.model == "fake" and [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == " the first answer."
    assert (
        reply.stop_reason == "end_turn"
    )  # a stop sequence ends with done_reason stop, as in Ollama
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    capped = client.messages.create(
        model="fake", max_tokens=3, messages=ask("Q: one\nA:"), **GREEDY
    )
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 3


def test_request_conversion():
    from ollamakit_anthropic.request import MessagesRequest

    image = "iVBORw0KGgo="
    body = {
        "model": "m",
        "max_tokens": 9,
        "system": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
        "temperature": 0.5,
        "top_k": 3,
        "stop_sequences": ["END"],
        "output_config": {"effort": "xhigh"},
        "tools": [
            WEATHER,
            {"type": "web_search_20250305", "name": "web_search"},
            {"name": "web_search", "input_schema": {"type": "object"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "data": image}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "rain"}],
                    },
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
    }
    native = MessagesRequest(body).native
    assert native["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "look", "images": [image]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "hm",
            "tool_calls": [
                {"id": "t1", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}
            ],
        },
        {
            "role": "tool",
            "content": "rain",
            "tool_call_id": "t1",
        },  # results come before the user's text
        {"role": "user", "content": "and?"},
    ]
    assert native["options"] == {"num_predict": 9, "temperature": 0.5, "top_k": 3, "stop": ["END"]}
    assert native["think"] == "high"  # output_config.effort, xhigh clamped; thinking would win
    # the built-in web_search owns its name: the custom tool of that name is dropped
    assert [t["function"]["name"] for t in native["tools"]] == ["get_weather", "web_search"]
    assert native["tools"][1]["function"]["parameters"]["required"] == ["query"]


def test_stream_events_in_ollamas_order(client):
    with client.messages.stream(
        model="fake", max_tokens=200, messages=ask("Q: two\nA:"), **GREEDY, stop_sequences=["\n"]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-4:] == ["text", "content_block_stop", "message_delta", "message_stop"]
    assert "ping" not in kinds  # Ollama sends none
    assert final.content[0].text == " the second answer." and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_raw_stream_wire_format(server):
    reply = requests.post(
        server.url + "/v1/messages",
        stream=True,
        json={
            "model": "fake",
            "max_tokens": 4,
            "stream": True,
            "messages": ask("Q: one\nA:"),
            "temperature": 0,
        },
    )
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in reply.text.split("\n\n") if f]
    events = [
        (
            f.split("\n")[0].removeprefix("event: "),
            json.loads(f.split("\n")[1].removeprefix("data: ")),
        )
        for f in frames
    ]
    assert [name for name, data in events] == [data["type"] for name, data in events]
    start = events[0][1]["message"]
    assert (
        start["content"] == []
        and "stop_reason" not in start
        and start["usage"]["output_tokens"] == 0
    )
    assert start["usage"]["input_tokens"] > 0  # the estimate: the prompt is counted at the end
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert (
        events[-2][1]["delta"] == {"stop_reason": "max_tokens"}
        and events[-2][1]["usage"]["output_tokens"] == 4
    )
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == " the"


def test_tools_round_trip(client):
    reply = client.messages.create(
        model="tooly",
        max_tokens=200,
        messages=ask("Q: weather?\nA:"),
        tools=[WEATHER],
        **ONE_LINE,
        **GREEDY,
    )
    [use] = [
        block for block in reply.content if block.type == "tool_use"
    ]  # after the text before it
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    assert use.id.startswith("call_") and reply.stop_reason == "tool_use"
    with client.messages.stream(
        model="tooly",
        max_tokens=200,
        messages=ask("Q: weather?\nA:"),
        tools=[WEATHER],
        **ONE_LINE,
        **GREEDY,
    ) as stream:
        streamed = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in streamed.content if b.type != "text"] == [
        ("tool_use", "get_weather", {"city": "Paris"})
    ]
    assert streamed.stop_reason == "tool_use"
    # the answer goes back as a tool_result block; the conversation runs on
    history = [
        *ask("Q: weather?\nA:"),
        {"role": "assistant", "content": [use.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    follow = client.messages.create(
        model="tooly", max_tokens=8, messages=history, tools=[WEATHER], **GREEDY
    )
    assert follow.type == "message"


def test_thinking(client):
    for thinking in ({"type": "enabled", "budget_tokens": 1024}, None):
        extra = {"thinking": thinking} if thinking else {}
        reply = client.messages.create(
            model="thinker", max_tokens=200, messages=ask("Q: why?\nA:"), **GREEDY, **extra
        )
        assert [b.type for b in reply.content] == ["thinking", "text"]
        assert reply.content[0].thinking == "because" and reply.content[1].text == "it is.\n"
    with client.messages.stream(
        model="thinker",
        max_tokens=200,
        messages=ask("Q: why?\nA:"),
        **GREEDY,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    assert [
        (b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content
    ] == [("thinking", "because"), ("text", "it is.\n")]
    off = client.messages.create(
        model="thinker",
        max_tokens=200,
        messages=ask("Q: why?\nA:"),
        **GREEDY,
        thinking={"type": "disabled"},
    )
    assert "thinking" not in [b.type for b in off.content]


def test_thinking_on_a_model_that_cannot_is_relaxed(client):
    reply = client.messages.create(
        model="fake",
        max_tokens=8,
        messages=ask("Q: one\nA:"),
        **GREEDY,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert reply.content[0].text == " the fir"


def test_web_search_fails_as_ollamas_does_without_a_search_service(client):
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}, WEATHER]
    reply = client.messages.create(
        model="tooly",
        max_tokens=200,
        messages=ask("Q: news?\nA:"),
        tools=tools,
        **ONE_LINE,
        **GREEDY,
    )
    use, result = [block for block in reply.content if block.type != "text"]
    assert (use.type, use.name, use.input) == (
        "server_tool_use",
        "web_search",
        {"query": "ollama news"},
    )
    assert use.id == "srvtoolu_" + reply.id.removeprefix("msg_")
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert result.content.error_code == "unavailable" and reply.stop_reason == "end_turn"
    with client.messages.stream(
        model="tooly",
        max_tokens=200,
        messages=ask("Q: news?\nA:"),
        tools=tools,
        **ONE_LINE,
        **GREEDY,
    ) as stream:
        streamed = stream.get_final_message()
    # text streamed before the call stays; the search's blocks follow it
    assert [b.type for b in streamed.content if b.type != "text"] == [
        "server_tool_use",
        "web_search_tool_result",
    ]
    assert streamed.stop_reason == "end_turn"


@pytest.mark.parametrize(
    "body, status, kind, message",
    [
        (
            {"max_tokens": 5, "messages": ask("x")},
            400,
            "invalid_request_error",
            "model is required",
        ),
        (
            {"model": "fake", "messages": ask("x")},
            400,
            "invalid_request_error",
            "max_tokens is required and must be positive",
        ),
        (
            {"model": "fake", "max_tokens": 0, "messages": ask("x")},
            400,
            "invalid_request_error",
            "max_tokens is required and must be positive",
        ),
        (
            {"model": "fake", "max_tokens": 5, "messages": []},
            400,
            "invalid_request_error",
            "messages is required",
        ),
        (
            {"model": "nope", "max_tokens": 5, "messages": ask("x")},
            404,
            "not_found_error",
            "model 'nope' not found",
        ),
        (
            {
                "model": "fake",
                "max_tokens": 5,
                "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}],
            },
            400,
            "invalid_request_error",
            "tool_use block missing required 'id' field",
        ),
        (
            {
                "model": "fake",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                        ],
                    }
                ],
            },
            400,
            "invalid_request_error",
            "invalid image source type: url. Only base64 images are supported.",
        ),
        (
            {"model": "fake", "max_tokens": 5, "messages": ask("x"), "tools": [WEATHER]},
            400,
            "invalid_request_error",
            "registry.ollama.ai/library/fake:latest does not support tools",
        ),
    ],
)
def test_errors_use_anthropics_envelope(server, body, status, kind, message):
    reply = requests.post(server.url + "/v1/messages", json=body)
    assert reply.status_code == status
    error = reply.json()
    assert error["type"] == "error" and error["error"] == {"type": kind, "message": message}
    assert error["request_id"].startswith("req_") and len(error["request_id"]) == 28


def test_client_errors(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="missing", max_tokens=5, messages=ask("x"))
    with pytest.raises(anthropic.BadRequestError, match="messages is required"):
        client.messages.create(model="fake", max_tokens=5, messages=[])


JUNK = [
    None,
    5,
    "x",
    [],
    {},
    [5],
    [{}],
    {"type": 5},
    [{"type": "image"}],
    [{"type": "tool_result", "content": 5}],
    [{"type": "image", "source": {"type": "base64", "data": "!!"}}],
    True,
]


@pytest.mark.parametrize(
    "field",
    [
        "system",
        "messages",
        "tools",
        "thinking",
        "output_config",
        "stop_sequences",
        "temperature",
        "top_k",
        "max_tokens",
        "model",
        "stream",
    ],
)
def test_malformed_fields_are_4xx_never_500(setup, field):
    for junk in JUNK:
        body = {"model": "fake", "max_tokens": 5, "messages": ask("x"), field: junk}
        if field == "messages":
            body["messages"] = [{"role": "user", "content": junk}]
        reply = setup.client.simulate_post("/v1/messages", json=body)
        assert reply.status_code < 500, (field, junk, reply.text)
        if reply.status_code >= 400:
            assert reply.json["type"] == "error" and reply.json["error"]["message"]
