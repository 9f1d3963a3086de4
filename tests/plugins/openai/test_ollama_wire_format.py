"""Where Ollama 0.33's OpenAI layer and native handlers differ from a naive translation
(openai/openai.go ToStreamChunks, FinishChunk, ToChatCompletion, FromChatRequest;
llm/llama_server.go logprobs; server/routes.go GenerateHandler and ChatHandler)."""

from __future__ import annotations

import base64

import pytest

from test_openai_api import TOOLS_SCRIPT, TOOLS_TEMPLATE, WEATHER_TOOL, chat, events, user

CUT = (
    len(TOOLS_SCRIPT) - len("Q: weather?\nA:") + 4
)  # the fake model's tokens are bytes: the call and 4 more
THINK_TEMPLATE = (
    "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"
    "{{ if .Think }}<think>{{ end }}"
)


@pytest.fixture
def models(fake):
    fake.model("tooly", TOOLS_SCRIPT + " and more words after the call.", template=TOOLS_TEMPLATE)
    fake.model("thinker", "Q: why?\nA:<think>because</think> it is.\n", template=THINK_TEMPLATE)
    fake.model("fim", template="<pre>{{ .Prompt }}<suf>{{ .Suffix }}<mid>")
    return fake


def deltas(reply) -> list[dict]:
    return [c["choices"][0]["delta"] for c in events(reply)[:-1] if c["choices"]]


def test_role_is_on_the_first_chunk_only(models):
    sent = deltas(
        chat(models, messages=user("Q: one\nA:"), temperature=0, max_tokens=5, stream=True)
    )
    assert sent[0]["role"] == "assistant" and all("role" not in d for d in sent[1:])


def test_thinking_chunks_keep_an_empty_content(models):
    sent = deltas(
        chat(models, model="thinker", messages=user("Q: why?\nA:"), temperature=0, stream=True)
    )
    thinking = [d for d in sent if "reasoning" in d]
    assert "".join(d["reasoning"] for d in thinking) == "because"
    assert all(
        d["content"] == "" for d in thinking
    )  # Ollama's Delta keeps "" (only nil is left out)


def test_mixed_chunks_split_and_the_empty_trailer_is_skipped():
    from ollamakit_openai.chat import ChatCompletions

    native = [
        {
            "model": "m",
            "message": {"role": "assistant", "content": "", "thinking": "hm"},
            "done": False,
        },
        {
            "model": "m",
            "message": {"role": "assistant", "content": "ok", "thinking": "!"},
            "done": False,
            "logprobs": [{"token": "ok", "logprob": -0.1}],
        },
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
        },
    ]
    chunks = list(ChatCompletions(None)._chunks(iter(native), {}))
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "", "reasoning": "hm"},
        {"reasoning": "!"},
        {"content": "ok"},
        {},
    ]
    assert "logprobs" in chunks[1]["choices"][0] and "logprobs" not in chunks[2]["choices"][0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_finish_reason_mapping(models):
    # a call was sent, but the answer ran out of tokens after it: only stop becomes tool_calls
    stream = events(
        chat(
            models,
            model="tooly",
            messages=user("Q: weather?\nA:"),
            tools=[WEATHER_TOOL],
            temperature=0,
            max_tokens=CUT,
            stream=True,
        )
    )
    assert any(c["choices"][0]["delta"].get("tool_calls") for c in stream[:-2])
    assert stream[-2]["choices"][0]["finish_reason"] == "length"
    whole = chat(
        models,
        model="tooly",
        messages=user("Q: weather?\nA:"),
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=CUT,
    ).json["choices"][0]
    assert whole["message"]["tool_calls"] and whole["finish_reason"] == "length"
    # no done_reason at all (a render-only reply): null, not "stop"
    rendered = chat(models, messages=user("x"), _debug_render_only=True).json
    assert (
        rendered["choices"][0]["finish_reason"] is None
        and rendered["_debug_info"]["rendered_template"]
    )


@pytest.mark.parametrize(
    "content, kind", [(None, "<nil>"), (5, "float64"), ({"a": 1}, "map[string]interface {}")]
)
def test_content_without_tool_calls_must_be_text(models, content, kind):
    reply = chat(models, messages=[{"role": "user", "content": content}])
    assert reply.status_code == 400
    assert reply.json["error"]["message"] == f"invalid message content type: {kind}"


def test_reasoning_effort_precedence(models):
    from ollamakit_openai.chat import native_request

    body = {"model": "m", "messages": user("x"), "reasoning_effort": "high"}
    assert native_request(body)["think"] == "high"
    assert native_request({**body, "reasoning": {"effort": "none"}})["think"] is False
    assert "think" not in native_request(
        {**body, "reasoning": {}}
    )  # reasoning given, without an effort
    quiet = chat(
        models,
        model="thinker",
        messages=user("Q: why?\nA:"),
        temperature=0,
        reasoning_effort="high",
        reasoning={"effort": "none"},
    ).json["choices"][0]["message"]
    assert "reasoning" not in quiet


def test_top_logprobs_need_logprobs(models):
    choice = chat(
        models, messages=user("Q: one\nA:"), temperature=0, max_tokens=3, top_logprobs=2
    ).json["choices"][0]
    assert "logprobs" not in choice
    native = models.client.simulate_post(
        "/api/generate",
        json={
            "model": "fake",
            "prompt": "Q: one\nA:",
            "top_logprobs": 2,
            "stream": False,
            "options": {"temperature": 0, "num_predict": 3},
        },
    ).json
    assert "logprobs" not in native


def test_empty_prompt_with_a_suffix_is_a_load(models):
    reply = models.client.simulate_post(
        "/api/generate", json={"model": "fim", "prompt": "", "suffix": "x", "stream": False}
    ).json
    assert reply["done"] and reply["done_reason"] == "load" and reply["response"] == ""


def test_images_to_a_model_that_cannot_see_them_are_refused(models):
    """Ollama's handlers make no vision check of their own, and its runner refuses images a
    model cannot see (ErrNoVisionModel) rather than answering without them: so do we."""
    image = base64.b64encode(b"\x89PNG").decode()
    generated = models.client.simulate_post(
        "/api/generate", json={"model": "fake", "prompt": "see", "images": [image], "stream": False}
    )
    chatted = models.client.simulate_post(
        "/api/chat",
        json={
            "model": "fake",
            "messages": [{"role": "user", "content": "see", "images": [image]}],
            "stream": False,
            "options": {"num_predict": 2},
        },
    )
    for response in (generated, chatted):
        assert response.status_code == 400
        assert response.json == {"error": "this model is missing data required for image input"}
