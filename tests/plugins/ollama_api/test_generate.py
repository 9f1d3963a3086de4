"""/api/generate over the fake engine: reply shapes, options, stops, seeds, load and unload."""

from __future__ import annotations

import json
import re
import time

import pytest

from ollamakit_scheduler.fixtures import SCRIPT, fake, make_fake  # noqa: F401 (fixtures)

GREEDY = {"temperature": 0}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def recited(prompt: str) -> str:
    """What the fake model says after ``prompt``: the rest of its script."""
    return SCRIPT[SCRIPT.index(prompt) + len(prompt) :]


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.text.splitlines() if line.strip()]


def generate(fake, **body):
    return fake.client.simulate_post("/api/generate", json={"model": "fake", **body})


def test_stream_shape_fields_and_types(fake):
    result = generate(fake, prompt="Q: two\nA:", options=GREEDY)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/x-ndjson"
    chunks = lines(result)
    *parts, final = chunks
    assert parts and all(c["done"] is False and c["model"] == "fake" for c in parts)
    assert all(RFC3339_UTC.match(c["created_at"]) for c in chunks)
    assert "".join(c["response"] for c in parts) == recited("Q: two\nA:")
    assert final["done"] is True and final["done_reason"] == "stop" and final["response"] == ""
    for key in METRICS:
        assert isinstance(final[key], int) and final[key] > 0, key
    assert final["eval_count"] == len(recited("Q: two\nA:").encode())
    assert final["total_duration"] >= final["load_duration"]
    assert isinstance(final["context"], list) and all(isinstance(t, int) for t in final["context"])


def test_stream_false_is_the_concatenation(fake):
    streamed = "".join(
        c["response"] for c in lines(generate(fake, prompt="Q: one\nA:", options=GREEDY))
    )
    result = generate(fake, prompt="Q: one\nA:", options=GREEDY, stream=False)
    assert result.status_code == 200 and result.headers["content-type"].startswith(
        "application/json"
    )
    assert result.json["response"] == streamed == recited("Q: one\nA:")
    assert result.json["done"] is True and result.json["done_reason"] == "stop"


def test_utf8_split_across_tokens_is_never_emitted_half(fake):
    # One token per byte: the emoji takes four tokens, each CJK character three.
    chunks = [c["response"] for c in lines(generate(fake, prompt="Q: three\nA:", options=GREEDY))]
    assert "".join(chunks) == recited("Q: three\nA:")
    assert "\ufffd" not in "".join(chunks)
    assert "\U0001f600" in chunks and "\u4e2d" in chunks


@pytest.mark.parametrize(
    "stops, expected",
    [
        (["second"], " the "),  # six tokens long
        (["answer.\nQ"], " the second "),
        (["zzz", "nd ans"], " the seco"),  # the earliest match wins
        (["\u6587"], None),
    ],
)
def test_stop_sequences_across_tokens_are_never_emitted(fake, stops, expected):
    prompt = "Q: three\nA:" if expected is None else "Q: two\nA:"
    result = generate(fake, prompt=prompt, options={**GREEDY, "stop": stops}, stream=False).json
    if expected is None:
        expected = " caf\u00e9 \u4e2d"
    assert result["response"] == expected
    assert result["done_reason"] == "stop"


def test_stop_prefix_is_released_when_it_does_not_complete(fake):
    result = generate(
        fake, prompt="Q: two\nA:", options={**GREEDY, "stop": ["the second answer!"]}, stream=False
    )
    assert result.json["response"] == recited("Q: two\nA:")


def test_num_predict_gives_length(fake):
    result = generate(
        fake, prompt="Q: two\nA:", options={**GREEDY, "num_predict": 3}, stream=False
    ).json
    assert (
        result["response"] == " th"
        and result["eval_count"] == 3
        and result["done_reason"] == "length"
    )


def test_model_parameters_apply_and_the_request_wins(make_fake):
    setup = make_fake()
    setup.model(params={"temperature": 0, "stop": ["answer"]})
    result = setup.client.simulate_post(
        "/api/generate", json={"model": "fake", "prompt": "Q: one\nA:", "stream": False}
    )
    assert result.json["response"] == " the first "
    override = {
        "model": "fake",
        "prompt": "Q: one\nA:",
        "stream": False,
        "options": {"stop": ["first"]},
    }
    assert setup.client.simulate_post("/api/generate", json=override).json["response"] == " the "


@pytest.mark.parametrize(
    "options, status, message",
    [
        ({"temperature": "hot"}, 400, 'option "temperature" must be of type float32'),
        ({"stop": "x"}, 400, 'option "stop" must be of type array'),
        ({"stop": [1]}, 400, 'option "stop" must be of an array of strings'),
        ({"num_predict": "5"}, 400, 'option "num_predict" must be of type integer'),
        ({"num_predict": True}, 400, 'option "num_predict" must be of type integer'),
        ({"top_k": -1}, 400, 'invalid option "top_k"'),
        ({"num_ctx": -5}, 400, 'invalid option "num_ctx"'),
        ({"top_p": 1.5}, 400, 'invalid option "top_p"'),
        ({"temperature": -1}, 400, 'invalid option "temperature"'),
        ({"repeat_last_n": -2}, 400, 'invalid option "repeat_last_n"'),
    ],
)
def test_option_errors(fake, options, status, message):
    result = generate(fake, prompt="Q: one\nA:", options=options)
    assert result.status_code == status
    assert result.json["error"].startswith(message)


def test_unknown_and_removed_options_are_ignored(fake):
    result = generate(
        fake,
        prompt="Q: one\nA:",
        options={**GREEDY, "bogus": 1, "mirostat": 2, "penalize_newline": True},
        stream=False,
    )
    assert result.status_code == 200 and result.json["response"] == recited("Q: one\nA:")


def test_same_seed_same_output_different_seed_differs(fake):
    def sample(seed):
        opts = {"temperature": 1.5, "top_k": 0, "top_p": 1.0, "seed": seed, "num_predict": 40}
        return generate(fake, prompt="Q: one\nA:", options=opts, stream=False).json["response"]

    first = sample(42)
    assert first == sample(42)
    assert first != recited("Q: one\nA:")[: len(first)]  # hot enough to leave the script
    assert any(sample(seed) != first for seed in (1, 2, 3))


def test_raw_mode(fake):
    result = generate(fake, prompt="Q: two\nA:", raw=True, options=GREEDY, stream=False).json
    assert result["response"] == recited("Q: two\nA:") and "context" not in result
    for extra in ({"system": "s"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2]}):
        bad = generate(fake, prompt="x", raw=True, **extra)
        assert bad.status_code == 400
        assert bad.json == {"error": "raw mode does not support template, system, or context"}


def test_context_is_prepended(fake):
    first = generate(
        fake, prompt="Q: two\nA:", options={**GREEDY, "num_predict": 4}, stream=False
    ).json
    assert first["response"] == " the"
    follow = generate(
        fake,
        prompt=" second",
        context=first["context"],
        options={**GREEDY, "num_predict": 7},
        stream=False,
    )
    assert follow.json["response"] == " answer"


def test_load_and_unload(fake):
    loaded = generate(fake).json
    assert loaded["done"] is True and loaded["done_reason"] == "load" and loaded["response"] == ""
    assert [m["name"] for m in fake.client.simulate_get("/api/ps").json["models"]] == [
        "fake:latest"
    ]
    unloaded = generate(fake, keep_alive=0).json
    assert unloaded["done_reason"] == "unload" and unloaded["response"] == ""
    assert fake.client.simulate_get("/api/ps").json == {"models": []}
    deadline = time.monotonic() + 5
    while not fake.runner.closed and time.monotonic() < deadline:  # closing runs in the background
        time.sleep(0.01)
    assert fake.runner.closed


def test_keep_alive_zero_with_a_prompt_unloads_after(fake):
    result = generate(
        fake, prompt="Q: one\nA:", keep_alive=0, options={**GREEDY, "num_predict": 2}, stream=False
    )
    assert result.status_code == 200 and result.json["response"] == " t"
    assert fake.client.simulate_get("/api/ps").json == {"models": []}


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"model": "nope"}, 404, "model 'nope' not found"),
        ({"model": ""}, 404, "model '' not found"),
        ({"model": "a/b/c/d"}, 400, "invalid model name"),
        ({"model": "fake", "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
        ({"model": "fake", "top_logprobs": -1}, 400, "top_logprobs must be between 0 and 20"),
        ({"model": "fake", "prompt": "x", "think": True}, 400, '"fake" does not support thinking'),
        (
            {"model": "fake", "think": "extreme"},
            400,
            'invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false)',
        ),
        ({"model": "fake", "keep_alive": "abc"}, 400, None),
        ({"model": "fake", "keep_alive": "300"}, 400, None),
        ({"model": "fake", "keep_alive": [1]}, 400, "Unsupported type: 'list'"),
        ({"model": "fake", "prompt": "x", "images": ["data:image/png;base64,AAAA"]}, 400, None),
        (
            {"model": "fake", "prompt": "x", "suffix": "y"},
            400,
            "registry.ollama.ai/library/fake:latest does not support insert",
        ),
        (
            {"model": "fake", "prompt": "x", "format": "xml"},
            400,
            'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object',
        ),
        ({"model": "fake", "prompt": 5}, 400, None),
    ],
)
def test_request_errors(fake, body, status, error):
    result = fake.client.simulate_post("/api/generate", json=body)
    assert result.status_code == status, result.text
    assert "error" in result.json
    if error is not None:
        assert result.json["error"] == error


def test_think_false_is_accepted(fake):
    result = generate(
        fake, prompt="Q: one\nA:", think=False, options={**GREEDY, "num_predict": 2}, stream=False
    )
    assert result.status_code == 200


def test_logprobs(fake):
    chunks = lines(
        generate(
            fake,
            prompt="Q: two\nA:",
            logprobs=True,
            top_logprobs=2,
            options={**GREEDY, "num_predict": 5},
        )
    )
    entries = [e for c in chunks for e in c.get("logprobs", [])]
    assert len(entries) == 5
    for entry in entries:
        assert entry["logprob"] <= 0 and bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][1]["logprob"]
        assert entry["top_logprobs"][0]["token"] == entry["token"]  # greedy picks the best
    joined = generate(
        fake, prompt="Q: two\nA:", logprobs=True, options={**GREEDY, "num_predict": 5}, stream=False
    ).json
    assert [e["token"] for e in joined["logprobs"]] == list(
        " the "
    ) and "top_logprobs" not in joined["logprobs"][0]


def test_prompt_longer_than_the_window(fake):
    long_prompt = "Q: one\nA: the first answer.\nQ: two\nA:"
    refused = generate(fake, prompt=long_prompt, truncate=False, options={**GREEDY, "num_ctx": 16})
    assert refused.status_code == 400
    assert refused.json["error"].startswith(
        "the prompt is longer than the context length currently available"
    )
    # Truncated: the start (num_keep tokens) and the end survive, so the answer is still two's.
    kept = generate(
        fake, prompt=long_prompt, options={**GREEDY, "num_ctx": 16, "num_predict": 4}, stream=False
    )
    assert kept.status_code == 200 and kept.json["response"] == " the"


def test_context_shift_keeps_generating_and_no_shift_stops_with_length(fake):
    opts = {**GREEDY, "num_ctx": 24, "num_predict": 60}
    shifted = generate(fake, prompt="Q: one\nA:", options=opts, stream=False).json
    assert shifted["eval_count"] > 24
    stopped = generate(fake, prompt="Q: one\nA:", shift=False, options=opts, stream=False).json
    assert stopped["done_reason"] == "length" and stopped["eval_count"] < 24


def test_debug_render_only(fake):
    result = generate(fake, prompt="Q: one", _debug_render_only=True, stream=False).json
    assert result["done"] is False and result["_debug_info"]["rendered_template"] == "Q: one"


# -- the real SmolLM2 model, end to end through the official client -------------------------

from ollamakit_scheduler.fixtures import smollm2_server  # noqa: E402,F401 (fixture)

# llama.cpp's greedy continuations (first 8 tokens) for raw prompts on SmolLM2-135M Q4_1.
LLAMACPP_GREEDY = {
    "The three primary colors are": " the primary colors of the RGB color model",
    "import numpy as np\n\ndef softmax(x):": "\n    return np.maximum(x,",
}


@pytest.mark.real_model
@pytest.mark.parametrize("prompt", list(LLAMACPP_GREEDY))
def test_real_model_greedy_matches_llama_cpp(smollm2_server, prompt):
    reply = smollm2_server.generate(
        model="smol", prompt=prompt, raw=True, options={"temperature": 0, "num_predict": 8}
    )
    assert reply.response == LLAMACPP_GREEDY[prompt]
    assert reply.eval_count == 8 and reply.done_reason == "length"
    assert reply.context is None


@pytest.mark.real_model
def test_real_model_prompt_is_the_chat_template(smollm2_server):
    # llama.cpp's token ids for the ChatML prompt of this question (no BOS for SmolLM2).
    expected = [1, 4093, 198, 5820, 253, 4354, 338, 314, 5724, 30, 2, 198, 1, 520, 9531, 198]
    reply = smollm2_server.generate(
        model="smol",
        prompt="Name a fruit that is yellow.",
        options={"temperature": 0, "num_predict": 2},
    )
    assert reply.context[: len(expected)] == expected and len(reply.context) == len(expected) + 2


def test_request_template_overrides_and_a_broken_one_is_500(fake):
    rendered = generate(
        fake, prompt="hi", template="[{{ .Prompt }}]", _debug_render_only=True, stream=False
    ).json
    assert rendered["_debug_info"]["rendered_template"] == "[hi]"
    broken = generate(fake, prompt="hi", template="{{ .Prompt")
    assert broken.status_code == 500 and broken.json["error"].startswith("template error")


def test_suffix_on_a_fill_in_the_middle_template(make_fake):
    setup = make_fake()
    setup.model(template="<pre>{{ .Prompt }}<suf>{{ .Suffix }}<mid>")
    body = {
        "model": "fake",
        "prompt": "def f(",
        "suffix": "return x",
        "_debug_render_only": True,
        "stream": False,
    }
    rendered = setup.client.simulate_post("/api/generate", json=body).json["_debug_info"][
        "rendered_template"
    ]
    assert rendered == "<pre>def f(<suf>return x<mid>"


def test_thinking_models_think_by_default(make_fake):
    setup = make_fake()
    template = (
        "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"
        "{{ if .Think }}/think{{ end }}"
    )
    setup.model(template=template)
    body = {"model": "fake", "prompt": "hi", "_debug_render_only": True, "stream": False}
    assert (
        setup.client.simulate_post("/api/generate", json=body).json["_debug_info"][
            "rendered_template"
        ]
        == "hi/think"
    )
    body["think"] = False
    assert (
        setup.client.simulate_post("/api/generate", json=body).json["_debug_info"][
            "rendered_template"
        ]
        == "hi"
    )


def test_truncate_false_keeps_the_message_history(make_fake):
    """The model's MESSAGE history goes into generate's prompt as in a chat, and as in Ollama's
    chat-like generate, ``truncate: false`` keeps it whole where the default drops the oldest."""
    setup = make_fake()
    setup.model(
        "storied",
        template="{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}",
        messages=[{"role": "user", "content": "Q: one " * 6},
                  {"role": "assistant", "content": "the first answer " * 6}],
    )  # fmt: skip
    body = {"model": "storied", "prompt": "Q: two", "_debug_render_only": True, "stream": False}
    small = {"num_ctx": 40}
    cut = setup.client.simulate_post("/api/generate", json={**body, "options": small}).json
    whole = setup.client.simulate_post(
        "/api/generate", json={**body, "options": small, "truncate": False}
    ).json
    assert cut["_debug_info"]["rendered_template"] == "user: Q: two\n"
    assert whole["_debug_info"]["rendered_template"].startswith("user: Q: one Q: one")
    assert whole["_debug_info"]["rendered_template"].endswith("user: Q: two\n")


def test_replies_escape_html_characters_as_go_does(fake):
    """Ollama's replies are Go's encoding/json: ``<``, ``>`` and ``&`` inside strings are
    written as ``\\u003c``, ``\\u003e`` and ``\\u0026``; the same bytes here, in a plain reply and
    in a stream."""
    body = {"model": "fake", "prompt": "a<b>&c", "template": "<|im_start|>{{ .Prompt }}"}
    plain = fake.client.simulate_post(
        "/api/generate", json={**body, "_debug_render_only": True, "stream": False}
    )
    assert '"rendered_template":"\\u003c|im_start|\\u003ea\\u003cb\\u003e\\u0026c"' in plain.text
    assert plain.json["_debug_info"]["rendered_template"] == "<|im_start|>a<b>&c"
    streamed = fake.client.simulate_post(
        "/api/generate", json={**body, "_debug_render_only": True, "stream": True}
    )
    assert "\\u003c|im_start|\\u003e" in streamed.text and "<" not in streamed.text
