"""The official JavaScript client, ollama-js (the version package-lock.json pins), against a real
``ollamakit serve`` over HTTP with SmolLM2: every call of the library, checked against what the
server answers the Python client or raw HTTP for the same request."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import jsonschema
import numpy as np
import ollama
import pytest

from ollamakit_registry.testing import LocalRegistry, registry_binary

from js_helpers import JsError

pytestmark = pytest.mark.real_model

GREEDY = {"temperature": 0, "num_predict": 8}
CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}
CAT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age"],
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
    },
}
# Tool calls written as bare JSON (the tag is "{"): with a schema in `format`, even a 135M model
# writes a well-formed call, so the tool-call path runs on the real engine, deterministically.
JSON_TOOLS_TEMPLATE = (
    "{{- if .Tools }}<|im_start|>system\nFunctions:{{ range .Tools }} {{ json .Function }}{{ end }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}"
    '{{- if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}'
    "{{ end }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
CALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "arguments"],
    "properties": {
        "name": {"enum": ["get_weather"]},
        "arguments": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city"],
            "properties": {"city": {"type": "string", "maxLength": 20}},
        },
    },
}


@pytest.fixture(scope="module")
def native(smol_server):
    return ollama.Client(host=smol_server.url, timeout=600)


def raw(server, method: str, path: str, **kwargs):
    reply = httpx.request(method, server.url + path, timeout=600, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


def names(listing: dict) -> list[str]:
    return sorted(m["model"] for m in listing["models"])


def test_version_list_show_and_ps_are_what_the_server_says(js, smol_server):
    version = js("version")
    assert version == raw(smol_server, "GET", "/api/version")
    assert version["version"].count(".") == 2

    listing = js("list")
    assert listing == raw(smol_server, "GET", "/api/tags")
    [entry] = listing["models"]
    assert entry["model"] == "smol:latest" and entry["details"]["family"] == "llama"
    assert entry["details"]["quantization_level"] == "Q4_1" and entry["size"] > 98_000_000

    shown = js("show", model="smol")
    assert shown == raw(smol_server, "POST", "/api/show", json={"model": "smol"})
    assert shown["model_info"]["general.architecture"] == "llama"
    assert shown["model_info"]["llama.embedding_length"] == 576
    assert {"completion", "tools"} <= set(shown["capabilities"])
    assert "<tool_call>" in shown["template"]

    js("generate", model="smol", keep_alive="5m")  # an empty prompt loads the model
    running = js("ps")
    assert running == raw(smol_server, "GET", "/api/ps")
    [loaded] = running["models"]
    assert loaded["model"] == "smol:latest" and loaded["digest"] == entry["digest"]
    assert loaded["size"] > 0 and datetime.fromisoformat(loaded["expires_at"]) > datetime.now(
        timezone.utc
    )


def test_create_copy_and_delete(js, smol_server):
    progress = js("create", model="js-made", files={"smol.gguf": smol_server.digest}, stream=True)
    statuses = [p["status"] for p in progress]
    assert f"using existing layer {smol_server.digest}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]

    made = js(
        "create",
        model="js-child",
        **{"from": "js-made"},
        system="Answer in one word.",
        parameters={"temperature": 0.1, "stop": ["\n\n"]},
        template=JSON_TOOLS_TEMPLATE,
    )
    assert made == {"status": "success"}
    child = js("show", model="js-child")
    assert child["system"] == "Answer in one word." and child["template"] == JSON_TOOLS_TEMPLATE
    assert (
        "temperature                    0.1" in child["parameters"]
        and '"\\n\\n"' in child["parameters"]
    )
    assert "tools" in child["capabilities"]

    assert js("copy", source="js-child", destination="backup/js-child:v1") == {"status": "success"}
    digests = {m["model"]: m["digest"] for m in js("list")["models"]}
    assert digests["backup/js-child:v1"] == digests["js-child:latest"] != digests["js-made:latest"]

    for name in ("backup/js-child:v1", "js-child", "js-made"):
        assert js("delete", model=name) == {"status": "success"}
    assert names(js("list")) == ["smol:latest"]

    with pytest.raises(JsError) as missing:
        js("delete", model="js-made")
    assert (missing.value.name, missing.value.status_code) == ("ResponseError", 404)
    assert (
        missing.value.error
        == httpx.request(
            "DELETE", smol_server.url + "/api/delete", json={"model": "js-made"}
        ).json()["error"]
    )
    with pytest.raises(JsError) as bad:
        js("create", model="js-bad", **{"from": "no-such-model"})
    assert bad.value.status_code == 404 and "not found" in bad.value.error


@pytest.mark.parametrize("method", ["generate", "chat"])
def test_generate_and_chat_streamed_or_not_match_the_python_client(js, native, method):
    request = {"model": "smol", "options": GREEDY}
    if method == "generate":
        request["prompt"] = "Why is the sky blue?"
    else:
        request["messages"] = CHAT
    text = (
        (lambda r: r["response"]) if method == "generate" else (lambda r: r["message"]["content"])
    )

    whole = js(method, **request)
    python = getattr(native, method)(**request)
    assert text(whole) == text(python.model_dump()) != ""
    assert whole["done"] is True and whole["done_reason"] == python.done_reason
    assert whole["eval_count"] == python.eval_count <= GREEDY["num_predict"]
    assert whole["prompt_eval_count"] == python.prompt_eval_count > 0
    if method == "generate":
        assert whole["context"] == python.context
    else:
        assert whole["message"]["role"] == "assistant"

    *parts, last = js(method, stream=True, **request)
    assert all(p["done"] is False for p in parts) and last["done"] is True
    assert "".join(text(p) for p in parts + [last]) == text(whole)
    assert last["eval_count"] == whole["eval_count"] and last["done_reason"] == whole["done_reason"]


@pytest.mark.parametrize(
    ("fmt", "stream"), [("json", False), (CAT, True)], ids=["json", "schema-streamed"]
)
def test_format_json_and_schema(js, fmt, stream):
    reply = js(
        "chat",
        model="smol",
        stream=stream,
        format=fmt,
        options={"temperature": 0, "num_predict": 80},
        messages=[{"role": "user", "content": "Describe a cat as JSON with its name and age."}],
    )
    last = reply[-1] if stream else reply
    content = (
        "".join(p["message"]["content"] for p in reply) if stream else reply["message"]["content"]
    )
    assert last["done_reason"] == "stop", content
    value = json.loads(content)
    if fmt == "json":
        assert isinstance(value, dict)
    else:
        jsonschema.validate(value, CAT)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_its_answer(js, stream):
    assert js("create", model="js-tools", **{"from": "smol"}, template=JSON_TOOLS_TEMPLATE) == {
        "status": "success"
    }
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = js(
        "chat",
        model="js-tools",
        messages=question,
        tools=[WEATHER],
        format=CALL,
        stream=stream,
        options={"temperature": 0},
    )
    calls = (
        [c for p in reply for c in p["message"].get("tool_calls", [])]
        if stream
        else reply["message"]["tool_calls"]
    )
    [call] = calls
    assert call["function"]["name"] == "get_weather"
    assert set(call["function"]["arguments"]) == {"city"} and isinstance(
        call["function"]["arguments"]["city"], str
    )
    assert (reply[-1] if stream else reply)["done"] is True

    # The call and the tool's answer go back as history: the assistant's tool_calls and a tool
    # message naming its tool.
    history = question + [
        {"role": "assistant", "content": "", "tool_calls": [{"function": call["function"]}]},
        {"role": "tool", "tool_name": "get_weather", "content": "18 C and sunny"},
    ]
    answer = js(
        "chat",
        model="js-tools",
        messages=history,
        tools=[WEATHER],
        options={"temperature": 0, "num_predict": 12},
    )
    assert (
        answer["done"] is True
        and answer["prompt_eval_count"] > (reply[-1] if stream else reply)["prompt_eval_count"]
    )
    assert js("delete", model="js-tools") == {"status": "success"}


def test_embed_and_embeddings_match_the_python_client(js, native):
    inputs = ["The sky is blue.", "Paris is in France."]
    embedded = js("embed", model="smol", input=inputs)
    python = native.embed(model="smol", input=inputs)
    assert (
        embedded["model"] == "smol"
        and embedded["prompt_eval_count"] == python.prompt_eval_count > 0
    )
    vectors = np.array(embedded["embeddings"])
    assert vectors.shape == (2, 576)
    np.testing.assert_allclose(vectors, np.array(python.embeddings), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    assert np.array(
        js("embed", model="smol", input="The sky is blue.", dimensions=64)["embeddings"]
    ).shape == (1, 64)
    legacy = js("embeddings", model="smol", prompt="The sky is blue.")
    np.testing.assert_allclose(
        legacy["embedding"],
        native.embeddings(model="smol", prompt="The sky is blue.").embedding,
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("how", ["stream", "client"])
def test_an_aborted_stream_frees_the_server(js, how):
    """The server has one slot: the next request can only run once the aborted answer (100,000
    tokens, minutes of work) has stopped."""
    follow = {"model": "smol", "prompt": "Hi", "options": {"temperature": 0, "num_predict": 2}}
    result = js(
        "abort",
        model="smol",
        prompt="Write a long story about a dragon.",
        after=3,
        how=how,
        options={"num_predict": 100_000},
        follow=follow,
    )
    assert result["caught"] == "AbortError"
    assert len(result["parts"]) == 3 and not any(p["done"] for p in result["parts"])
    assert result["next"]["done"] is True and result["next"]["eval_count"] == 2
    assert result["next_seconds"] < 120


def test_errors_carry_the_servers_status_and_message(js, smol_server):
    for method, request in [
        ("generate", {"model": "no-such-model", "prompt": "Hi"}),
        ("chat", {"model": "no-such-model", "messages": CHAT}),
        ("show", {"model": "no-such-model"}),
        ("embed", {"model": "no-such-model", "input": "Hi"}),
    ]:
        with pytest.raises(JsError) as thrown:
            js(method, **request)
        expected = httpx.post(f"{smol_server.url}/api/{method}", json=request)
        assert (thrown.value.name, thrown.value.status_code, thrown.value.error) == (
            "ResponseError",
            expected.status_code,
            expected.json()["error"],
        )
        assert expected.status_code == 404


def test_push_and_pull_through_a_registry(js, smol_server, tmp_path):
    if registry_binary() is None:
        pytest.skip(
            "docker-registry is not installed (scripts/test.sh installs Debian's docker-registry)"
        )
    with LocalRegistry(tmp_path / "registry") as registry:
        remote = f"{registry.host}/library/smol-js:v1"
        assert js("copy", source="smol", destination=remote) == {"status": "success"}
        digest = {m["model"]: m["digest"] for m in js("list")["models"]}[remote]

        pushed = js("push", model=remote, insecure=True, stream=True)
        assert pushed[-1] == {"status": "success"}
        assert any(p.get("total") and p.get("completed") == p["total"] for p in pushed)
        assert js("delete", model=remote) == {"status": "success"}

        pulled = js("pull", model=remote, insecure=True, stream=True)
        statuses = [p["status"] for p in pulled]
        assert statuses[0] == "pulling manifest" and statuses[-2:] == [
            "writing manifest",
            "success",
        ]
        assert {m["model"]: m["digest"] for m in js("list")["models"]}[remote] == digest
        assert js("pull", model=remote, insecure=True) == {"status": "success"}  # not streamed

        absent = {"model": f"{registry.host}/library/nothing:v1", "insecure": True}
        with pytest.raises(JsError) as missing:
            js("pull", **absent)
        expected = httpx.post(f"{smol_server.url}/api/pull", json={**absent, "stream": False})
        assert (missing.value.status_code, missing.value.error) == (
            expected.status_code,
            expected.json()["error"],
        )
        assert js("delete", model=remote) == {"status": "success"}
