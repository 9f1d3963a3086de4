"""Prompt building as Ollama does it: messages and legacy templates, generate, FIM, images,
think values, tool values, truncation."""

import json
from pathlib import Path

import pytest

from ollamakit.lib.templates import (
    FAMILIES,
    collate,
    execute,
    fit_messages,
    parse_template,
    render_chat,
    render_fim,
    render_generate,
    tag_images,
    think_values,
)

REFERENCE = json.loads((Path(__file__).parent / "reference" / "go_answers.json").read_text())
BASIC = REFERENCE["conversations"]["basic"]
CHATML = FAMILIES["chatml"].template

# A legacy (per-turn) template in the style of older Ollama library models.
LEGACY = (
    "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n"
    "{{ end }}<|assistant|>\n{{ .Response }}<|end|>\n"
)


@pytest.mark.parametrize(
    "case", REFERENCE["tool_printing"], ids=range(len(REFERENCE["tool_printing"]))
)
def test_tools_and_arguments_print_as_go_does(case):
    tools = [*REFERENCE["tools"], REFERENCE["tools_extra"]] if case["tools"] else None
    assert execute(case["template"], REFERENCE["conversations"]["tools"], tools) == case["output"]


def test_collate_merges_same_role_but_not_tool_results():
    system, turns = collate(
        [
            {"role": "system", "content": "a"},
            {"role": "system", "content": "b"},
            {"role": "user", "content": "1"},
            {"role": "user", "content": "2"},
            {"role": "tool", "content": "x"},
            {"role": "tool", "content": "y"},
        ]
    )
    assert system == "a\n\nb"
    assert [(t["role"], t["content"]) for t in turns] == [
        ("system", "a\n\nb"),
        ("user", "1\n\n2"),
        ("tool", "x"),
        ("tool", "y"),
    ]


def test_legacy_template_runs_per_turn_and_stops_at_the_last_response():
    assert execute(LEGACY, BASIC) == (
        "<|system|>\nS<|end|>\n<|user|>\nU1<|end|>\n<|assistant|>\nA1<|end|>\n"
        "<|user|>\nU2<|end|>\n<|assistant|>\n"
    )


def test_legacy_prefill_continues_a_trailing_assistant_message():
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    assert execute(LEGACY, msgs) == "<|user|>\nHi<|end|>\n<|assistant|>\nHel"


def test_legacy_cut_keeps_nothing_after_response_even_inside_blocks():
    t = parse_template("{{ .Prompt }}{{ if .Prompt }}[{{ .Response }}]{{ end }} tail")
    assert execute(t, [{"role": "user", "content": "p"}]) == "p["


def test_default_template_passes_the_prompt_through():
    assert execute(None, [{"role": "user", "content": "just this"}]) == "just this"
    assert render_chat(None, None, [{"role": "user", "content": "q"}]).text == "q"


def test_generate_builds_system_history_and_prompt():
    history = [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}]
    p = render_generate(CHATML, None, "U2", model_system="S", history=history)
    assert p.text == execute(CHATML, BASIC)
    # A request system prompt replaces the model's; without history when context was sent.
    p = render_generate(
        CHATML, None, "U2", system="R", model_system="S", history=history, with_history=False
    )
    assert (
        p.text
        == "<|im_start|>system\nR<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    )


def test_generate_with_request_template_runs_it_directly():
    p = render_generate(CHATML, None, "hi", request_template="<{{ .Prompt }}>")
    assert p.text == "<hi>"


def test_fill_in_the_middle():
    fim = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
    assert render_fim(fim, "def f(", "    return x") == "<PRE> def f( <SUF>    return x <MID>"
    assert render_generate(fim, None, "a", suffix="b").text == "<PRE> a <SUF>b <MID>"
    assert "insert" in parse_template(fim).capabilities()


def test_think_values():
    assert think_values(None) == {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    assert think_values(True) == {"Think": True, "ThinkLevel": "medium", "IsThinkSet": True}
    assert think_values(False) == {"Think": False, "ThinkLevel": "", "IsThinkSet": True}
    assert think_values("high") == {"Think": True, "ThinkLevel": "high", "IsThinkSet": True}
    t = "{{ range .Messages }}{{ end }}{{ if .Think }}think:{{ .ThinkLevel }}{{ else }}plain{{ end }}"
    assert execute(t, BASIC, think="low") == "think:low"
    assert execute(t, BASIC) == "plain"


def test_images_become_markers():
    msgs = [
        {"role": "user", "content": "look [img] here", "images": ["AAAA", "BBBB"]},
        {"role": "user", "content": "and this", "images": ["CCCC"]},
    ]
    tagged, images = tag_images(msgs)
    assert [m["content"] for m in tagged] == ["[img-1]look [img-0] here", "[img-2]and this"]
    assert images == ["AAAA", "BBBB", "CCCC"]
    p = render_chat(CHATML, None, msgs)
    assert "[img-1]look [img-0] here\n\n[img-2]and this" in p.text and p.images == images


def test_truncation_drops_oldest_but_keeps_system_and_last():
    msgs = [{"role": "system", "content": "S"}]
    for n in range(6):
        msgs += [
            {"role": "user", "content": f"question {n} " + "x" * 40},
            {"role": "assistant", "content": f"answer {n}"},
        ]
    msgs.append({"role": "user", "content": "final"})
    full = execute(CHATML, msgs)
    p = render_chat(CHATML, None, msgs, count_tokens=len, num_ctx=len(full) // 2)
    assert len(p.text) <= len(full) // 2
    assert p.text.startswith("<|im_start|>system\nS<|im_end|>") and "final" in p.text
    assert "question 0" not in p.text and p.dropped > 0
    assert p.text == execute(CHATML, [msgs[0], *msgs[1 + p.dropped :]])
    # Nothing fits: the system messages and the last message still go.
    p = render_chat(CHATML, None, msgs, count_tokens=len, num_ctx=1)
    assert p.text == execute(CHATML, [msgs[0], msgs[-1]])
    # Everything fits: nothing dropped.
    assert render_chat(CHATML, None, msgs, count_tokens=len, num_ctx=10**6).dropped == 0


def test_fit_messages_counts_images():
    msgs = [{"role": "user", "content": "a", "images": ["x"]}, {"role": "user", "content": "b"}]
    assert fit_messages(msgs, lambda m: "", lambda s: 0, num_ctx=100, image_tokens=768) == 1
    assert fit_messages(msgs, lambda m: "", lambda s: 0, num_ctx=1000, image_tokens=768) == 0


def _ollama_cut(messages, render, count_tokens, num_ctx, image_tokens=0):
    """Ollama's own loop (server/prompt.go): from the end, keep messages while they fit."""
    n = len(messages) - 1
    for i in range(n - 1, -1, -1):
        kept = [m for m in messages[:i] if m.get("role") == "system"] + messages[i:]
        size = count_tokens(render(kept)) + image_tokens * sum(
            len(m.get("images") or []) for m in messages[i:]
        )
        if size > num_ctx:
            break
        n = i
    return max(n, 0)


@pytest.mark.parametrize("seed", range(40))
def test_fit_messages_cuts_where_ollama_does(seed):
    import random

    rng = random.Random(seed)
    roles = ["user", "assistant", "system", "tool"]
    msgs = [
        {
            "role": rng.choice(roles),
            "content": "x" * rng.randrange(0, 30),
            **({"images": ["i"] * rng.randrange(1, 3)} if rng.random() < 0.1 else {}),
        }
        for _ in range(rng.randrange(1, 60))
    ]
    render = lambda kept: execute(CHATML, kept)  # noqa: E731
    for num_ctx in (1, 50, 200, 800, 5000):
        for image_tokens in (0, 40):
            assert fit_messages(msgs, render, len, num_ctx, image_tokens) == _ollama_cut(
                msgs, render, len, num_ctx, image_tokens
            )


def test_fit_messages_renders_little_of_a_long_chat():
    msgs = [{"role": "system", "content": "S"}] + [
        {"role": "user" if n % 2 else "assistant", "content": f"m{n}"} for n in range(20_000)
    ]
    rendered = []

    def render(kept):
        rendered.append(len(kept))
        return "".join(m["content"] for m in kept)

    start = fit_messages(msgs, render, len, num_ctx=3000)
    assert len(render(msgs[:1] + msgs[start:])) <= 3000 < len(render(msgs[:1] + msgs[start - 1 :]))
    # One render of the whole chat, then renders of what is kept: linear, not 20,000 renders.
    assert sum(rendered) < 2 * len(msgs)


def test_jinja_used_when_no_go_template():
    jinja = (
        "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
        "{% if add_generation_prompt %}{{ bos_token }}>{% endif %}"
    )
    assert (
        render_chat(None, jinja, BASIC, bos_token="<s>").text
        == "[system:S][user:U1][assistant:A1][user:U2]<s>>"
    )
    # A Go template wins over the Jinja one.
    assert render_chat(CHATML, jinja, BASIC).text == execute(CHATML, BASIC)
