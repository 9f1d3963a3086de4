"""``/v1/responses`` with the official ``openai`` client over real HTTP (waitress), checked
against Ollama 0.33 (openai/responses.go, middleware/openai.go ResponsesMiddleware)."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from test_openai_api import TOOLS_SCRIPT, TOOLS_TEMPLATE

THINK_TEMPLATE = (
    "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"
    "{{ if .Think }}<think>{{ end }}"
)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
SEARCH_SCRIPT = (
    'Q: news?\nA: <tool_call>{"name": "web_search", "arguments": {"query": "ollama"}}</tool_call>\n'
)


@pytest.fixture
def server(fake):
    fake.model("tooly", TOOLS_SCRIPT, template=TOOLS_TEMPLATE)
    fake.model("searcher", SEARCH_SCRIPT, template=TOOLS_TEMPLATE)
    fake.model("thinker", "Q: why?\nA:<think>because</think> it is.\n", template=THINK_TEMPLATE)
    with fake.server() as running:
        yield running


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)


def test_text_response(oai):
    reply = oai.responses.create(
        model="fake",
        input="Q: one\nA:",
        temperature=0,
        max_output_tokens=8,
        instructions="answer briefly",
    )
    assert (
        reply.id.startswith("resp_") and reply.object == "response" and reply.status == "completed"
    )
    assert reply.output_text == " the fir" and reply.model == "fake"
    [item] = reply.output
    assert item.type == "message" and item.id.startswith("msg_") and item.role == "assistant"
    assert (
        reply.usage.output_tokens == 8 and reply.usage.total_tokens == reply.usage.input_tokens + 8
    )
    # the request's settings come back, with Ollama's defaults where none were given
    assert (reply.instructions, reply.max_output_tokens, reply.temperature, reply.top_p) == (
        "answer briefly",
        8,
        0,
        1.0,
    )
    assert reply.truncation == "disabled" and reply.store is False and reply.tools == []
    assert reply.text.format.type == "text" and reply.completed_at >= reply.created_at


def test_stream_events(oai):
    stream = oai.responses.create(
        model="fake",
        input=[{"role": "user", "content": "Q: one\nA:"}],
        temperature=0,
        max_output_tokens=4,
        stream=True,
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == " the"
    done = events[-1].response
    assert (
        done.status == "completed" and done.output_text == " the" and done.usage.output_tokens == 4
    )


def test_raw_stream_has_event_lines(server):
    reply = requests.post(
        server.url + "/v1/responses",
        json={
            "model": "fake",
            "input": "Q: one\nA:",
            "stream": True,
            "max_output_tokens": 2,
            "temperature": 0,
        },
    )
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [f.split("\n") for f in reply.text.split("\n\n") if f]
    assert all(f[0].startswith("event: ") and f[1].startswith("data: ") for f in frames)
    assert all(f[0][7:] == json.loads(f[1][6:])["type"] for f in frames)
    assert "[DONE]" not in reply.text


def test_function_call_and_its_output(oai):
    reply = oai.responses.create(
        model="tooly", input="Q: weather?\nA:", tools=[WEATHER], temperature=0
    )
    [call] = reply.output
    assert (
        call.type == "function_call"
        and call.name == "get_weather"
        and json.loads(call.arguments) == {"city": "Paris"}
    )
    assert (
        call.call_id.startswith("call_")
        and call.id == f"fc_{reply.id}_0"
        and call.status == "completed"
    )
    assert reply.tools[0].name == "get_weather"
    events = list(
        oai.responses.create(
            model="tooly", input="Q: weather?\nA:", tools=[WEATHER], temperature=0, stream=True
        )
    )
    kinds = [e.type for e in events]
    # the model's text before the call (a space) streams; after a call text stops, as in Ollama
    assert (
        kinds.count("response.output_text.delta") == 1 and "response.output_text.done" not in kinds
    )
    assert kinds.index("response.function_call_arguments.delta") > kinds.index(
        "response.output_text.delta"
    )
    final = events[-1].response
    assert [o.type for o in final.output] == ["function_call", "message"] and final.output[
        0
    ].name == "get_weather"
    follow = oai.responses.create(
        model="tooly",
        tools=[WEATHER],
        temperature=0,
        max_output_tokens=5,
        input=[
            {"role": "user", "content": "Q: weather?\nA:"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert follow.status == "completed"


def test_reasoning(oai):
    reply = oai.responses.create(
        model="thinker", input="Q: why?\nA:", temperature=0, reasoning={"effort": "high"}
    )
    reasoning, message = reply.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "because"
    assert reasoning.encrypted_content == "because" and reasoning.id == f"rs_{reply.id}"
    assert message.content[0].text == "it is.\n" and reply.reasoning.effort == "high"
    events = list(
        oai.responses.create(model="thinker", input="Q: why?\nA:", temperature=0, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_text.delta"]
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index(
        "response.output_text.delta"
    )
    assert [o.type for o in events[-1].response.output] == ["reasoning", "message"]
    with pytest.raises(openai.BadRequestError, match="invalid reasoning value"):
        oai.responses.create(model="thinker", input="x", reasoning={"effort": "huge"})


def test_json_schema_format(oai):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    reply = oai.responses.create(
        model="fake",
        input="Q: one\nA:",
        text={"format": {"type": "json_schema", "name": "flag", "schema": schema, "strict": True}},
    )
    assert set(json.loads(reply.output_text)) == {"ok"}
    assert reply.text.format.name == "flag" and reply.text.format.strict is True


def test_web_search_is_refused_as_ollama_refuses_it(oai):
    tools = [{"type": "web_search"}]
    with pytest.raises(openai.AuthenticationError, match="unauthorized"):
        oai.responses.create(model="searcher", input="Q: news?\nA:", tools=tools, temperature=0)
    events = list(
        oai.responses.create(
            model="searcher", input="Q: news?\nA:", tools=tools, temperature=0, stream=True
        )
    )
    assert (
        events[-1].type == "response.failed"
        and events[-1].response.error.code == "authentication_error"
    )


def test_conversion_of_input_items():
    from ollamakit_openai.responses_request import ResponsesRequest

    request = ResponsesRequest(
        {
            "model": "m",
            "instructions": "sys",
            "max_output_tokens": 7,
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
                {"type": "reasoning", "encrypted_content": "plan"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "calling"}],
                },
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": "done"}],
                },
                {"type": "web_search_call", "id": "ws", "status": "completed"},
            ],
            "tools": [
                {"type": "namespace", "name": "fs", "tools": [{"type": "function", "name": "read"}]}
            ],
        }
    )
    native = request.native()
    assert native["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        # the call takes the reasoning before it; the replayed message joins the call it precedes
        {
            "role": "assistant",
            "content": "calling",
            "thinking": "plan",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
        {"role": "tool", "content": "done", "tool_call_id": "c1"},
    ]
    assert native["options"] == {"temperature": 1.0, "num_predict": 7}
    assert [t["function"]["name"] for t in native["tools"]] == ["fs.read"]


def test_zstd_bodies(server):
    import zstandard

    body = json.dumps(
        {"model": "fake", "input": "Q: one\nA:", "max_output_tokens": 4, "temperature": 0}
    ).encode()
    headers = {"Content-Encoding": "zstd", "Content-Type": "application/json"}
    reply = requests.post(
        server.url + "/v1/responses",
        data=zstandard.ZstdCompressor().compress(body),
        headers=headers,
    )
    assert reply.status_code == 200 and reply.json()["output"][0]["content"][0]["text"] == " the"
    broken = requests.post(server.url + "/v1/responses", data=b"not zstd", headers=headers)
    assert (
        broken.status_code == 400
        and broken.json()["error"]["message"] == "failed to decompress zstd body"
    )
    bomb = zstandard.ZstdCompressor().compress(
        b" " * (21 << 20)
    )  # 21 MiB of spaces, a few KiB packed
    too_big = requests.post(server.url + "/v1/responses", data=bomb, headers=headers)
    assert (
        too_big.status_code == 400
        and too_big.json()["error"]["message"] == "http: request body too large"
    )


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"model": "fake", "input": 5}, 400, "input must be a string or array"),
        (
            {"model": "fake", "input": [{"content": "x"}]},
            400,
            "input[0]: input item missing required 'type' field",
        ),
        (
            {"model": "fake", "input": [{"type": "bogus"}]},
            400,
            'input[0]: unknown input item type: "bogus"',
        ),
        (
            {
                "model": "fake",
                "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
            },
            400,
            "file inputs are not currently supported",
        ),
        (
            {"model": "fake", "input": [{"role": "user", "content": [{"type": "audio"}]}]},
            400,
            "input[0]: content[0]: unknown content type: audio",
        ),
        ({"model": "nope", "input": "x"}, 404, "model 'nope' not found"),
    ],
)
def test_errors_use_the_openai_envelope(server, body, status, message):
    reply = requests.post(server.url + "/v1/responses", json=body)
    assert reply.status_code == status and reply.json()["error"]["message"] == message


JUNK = [
    None,
    5,
    "x",
    [],
    {},
    [5],
    [{}],
    {"type": 5},
    [{"type": "message", "content": 5}],
    [{"type": "function_call", "arguments": "[1]"}],
    [{"type": "function_call_output", "output": [{"type": 7}]}],
    [
        {
            "role": "user",
            "content": [{"type": "input_image", "image_url": "data:image/png;base64,!!"}],
        }
    ],
    True,
]


@pytest.mark.parametrize(
    "field",
    [
        "input",
        "tools",
        "reasoning",
        "text",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "model",
        "stream",
        "truncation",
    ],
)
def test_malformed_fields_are_4xx_never_500(fake, field):
    for junk in JUNK:
        body = {"model": "fake", "input": "x", "max_output_tokens": 3, field: junk}
        reply = fake.client.simulate_post("/v1/responses", json=body)
        assert reply.status_code < 500, (field, junk, reply.text)
        if reply.status_code >= 400:
            assert reply.json["error"]["message"]
