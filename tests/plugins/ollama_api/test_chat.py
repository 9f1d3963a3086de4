"""/api/chat over the fake engine (a model with no template: turns are concatenated)."""

from __future__ import annotations

import json

import pytest

from ollamakit_scheduler.fixtures import SCRIPT, fake, make_fake  # noqa: F401 (fixtures)

GREEDY = {"temperature": 0}


def chat(fake, messages, **body):
    return fake.client.simulate_post(
        "/api/chat", json={"model": "fake", "messages": messages, **body}
    )


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.text.splitlines() if line.strip()]


def user(text):
    return {"role": "user", "content": text}


def test_streamed_chat_shape(fake):
    chunks = lines(chat(fake, [user("Q: two\nA:")], options={**GREEDY, "stop": ["\n"]}))
    *parts, final = chunks
    assert all(c["message"]["role"] == "assistant" and c["done"] is False for c in parts)
    assert "".join(c["message"]["content"] for c in parts) == " the second answer."
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert "context" not in final
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[key], int) and final[key] > 0


def test_stream_false_concatenates(fake):
    result = chat(fake, [user("Q: one\nA:")], options={**GREEDY, "stop": ["\n"]}, stream=False)
    assert result.status_code == 200
    assert result.json["message"] == {"role": "assistant", "content": " the first answer."}
    assert result.json["done_reason"] == "stop"


def test_history_roles_and_tool_messages(fake):
    messages = [
        {"role": "USER", "content": "Q: one\nA:"},
        {"role": "Assistant", "content": " the first answer.\n"},
        {"role": "tool", "content": "", "tool_name": "lookup"},
        {"role": "user", "content": "Q: two\nA:"},
    ]
    result = chat(fake, messages, options={**GREEDY, "stop": ["\n"]}, stream=False)
    assert result.status_code == 200 and result.json["message"]["content"] == " the second answer."


def test_model_messages_and_system_come_first(make_fake):
    setup = make_fake()
    setup.model(system="ignored by a template-less model", messages=[user("Q: three\nA:")])
    # With no template ({{ .Prompt }}) consecutive user turns are joined, the model's history first.
    debug = setup.client.simulate_post(
        "/api/chat",
        json={
            "model": "fake",
            "messages": [user("!")],
            "_debug_render_only": True,
            "stream": False,
        },
    ).json
    assert debug["_debug_info"]["rendered_template"] == "Q: three\nA:\n\n!"


def test_load_and_unload(fake):
    loaded = chat(fake, []).json
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert loaded["done"] is True and loaded["done_reason"] == "load"
    assert len(fake.client.simulate_get("/api/ps").json["models"]) == 1
    unloaded = fake.client.simulate_post("/api/chat", json={"model": "fake", "keep_alive": 0}).json
    assert unloaded["done_reason"] == "unload" and unloaded["message"]["content"] == ""
    assert fake.client.simulate_get("/api/ps").json == {"models": []}


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"messages": []}, 400, "model is required"),
        ({"model": "nope", "messages": []}, 404, "model 'nope' not found"),
        (
            {"model": "fake", "messages": [user("x")], "think": True},
            400,
            '"fake" does not support thinking',
        ),
        (
            {"model": "fake", "messages": [user("x")], "top_logprobs": 30},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        (
            {
                "model": "fake",
                "messages": [user("x")],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            400,
            "registry.ollama.ai/library/fake:latest does not support tools",
        ),
        ({"model": "fake", "messages": "hello"}, 400, None),
        ({"model": "fake", "messages": [{"role": "user", "content": 5}]}, 400, None),
        (
            {"model": "fake", "messages": [user("x")], "options": {"top_p": "x"}},
            400,
            'option "top_p" must be of type float32',
        ),
    ],
)
def test_request_errors(fake, body, status, error):
    result = fake.client.simulate_post("/api/chat", json=body)
    assert result.status_code == status, result.text
    if error is not None:
        assert result.json == {"error": error}


def test_long_history_is_truncated_oldest_first(fake):
    messages = [
        user("Q: one\nA:"),
        {"role": "assistant", "content": " the first answer.\n"},
    ] * 3 + [user("Q: two\nA:")]
    opts = {**GREEDY, "num_ctx": 40, "stop": ["\n"]}
    result = chat(fake, messages, options=opts, stream=False)
    assert result.status_code == 200 and result.json["message"]["content"] == " the second answer."
    assert result.json["prompt_eval_count"] <= 40


def test_chat_logprobs_are_appended(fake):
    result = chat(
        fake,
        [user("Q: two\nA:")],
        logprobs=True,
        options={**GREEDY, "num_predict": 4},
        stream=False,
    ).json
    assert [e["token"] for e in result["logprobs"]] == [" ", "t", "h", "e"]


# -- the real SmolLM2 model ------------------------------------------------------------------

from ollamakit_scheduler.fixtures import smollm2_server  # noqa: E402,F401 (fixture)


@pytest.mark.real_model
def test_real_model_chat_equals_the_raw_chatml_prompt(smollm2_server):
    question = "Name a fruit that is yellow."
    options = {"temperature": 0, "num_predict": 8, "seed": 1}
    chatted = smollm2_server.chat(
        model="smol", messages=[{"role": "user", "content": question}], options=options
    )
    raw = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    generated = smollm2_server.generate(model="smol", prompt=raw, raw=True, options=options)
    assert chatted.message.content == generated.response
    assert chatted.message.content.startswith("The most")
    assert chatted.eval_count == 8


@pytest.mark.real_model
def test_real_model_streamed_chat_with_a_stop(smollm2_server):
    parts = list(
        smollm2_server.chat(
            model="smol",
            messages=[{"role": "user", "content": "Name a fruit that is yellow."}],
            stream=True,
            options={"temperature": 0, "num_predict": 16, "stop": [" fruit"]},
        )
    )
    text = "".join(p.message.content for p in parts)
    assert (
        text.startswith("The most ") and len(text.split()) == 3
    )  # "The most <adjective>", cut before " fruit"
    assert parts[-1].done and parts[-1].done_reason == "stop"


CHATML = "{{- range $m := .Messages }}<|start|>{{ $m.Role }}\n{{ $m.Content }}<|end|>\n{{ end }}<|start|>assistant\n"


def test_go_template_renders_the_conversation(make_fake):
    setup = make_fake()
    setup.model(template=CHATML, system="Be brief.")
    body = {"model": "fake", "messages": [user("hi")], "_debug_render_only": True, "stream": False}
    rendered = setup.client.simulate_post("/api/chat", json=body).json["_debug_info"][
        "rendered_template"
    ]
    assert (
        rendered
        == "<|start|>system\nBe brief.<|end|>\n<|start|>user\nhi<|end|>\n<|start|>assistant\n"
    )
    # The request's own system message replaces the model's.
    body["messages"] = [{"role": "system", "content": "Mine."}, user("hi")]
    rendered = setup.client.simulate_post("/api/chat", json=body).json["_debug_info"][
        "rendered_template"
    ]
    assert rendered.startswith("<|start|>system\nMine.<|end|>") and "Be brief." not in rendered


def test_tools_need_a_template_that_uses_them(make_fake):
    setup = make_fake()
    setup.model(template="{{ if .Tools }}{{ json .Tools }}{{ end }}" + CHATML)
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    body = {
        "model": "fake",
        "messages": [user("hi")],
        "tools": tools,
        "_debug_render_only": True,
        "stream": False,
    }
    result = setup.client.simulate_post("/api/chat", json=body)
    assert (
        result.status_code == 200 and '"weather"' in result.json["_debug_info"]["rendered_template"]
    )
