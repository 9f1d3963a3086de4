"""Control tokens an output parser reads (Mistral's ``[TOOL_CALLS]``, ``[ARGS]``) reach it as
text, as Ollama asks llama-server to keep a parser's ``preserved_tokens``; any other control
token still adds nothing to the answer. The fake model's vocabulary holds them as control
tokens, as a real Mistral vocabulary does."""

from __future__ import annotations

import ollama
import pytest

from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

SPECIALS = ["[TOOL_CALLS]", "[ARGS]", "[INST]", "[/INST]", "[NOISE]"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
# A template whose tool-call tag is Mistral's control token followed by JSON
TEMPLATE = """{{- if .Tools }}[AVAILABLE_TOOLS]{{ range .Tools }}{{ .Function.Name }}{{ end }}\
[/AVAILABLE_TOOLS]{{ end }}{{- range .Messages }}[INST] {{ .Content }}[/INST]{{ end }}
{{- if .ToolCalls }}[TOOL_CALLS][{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", \
"arguments": {{ .Function.Arguments }}}{{ end }}]{{ end }}"""
QUESTION = "Weather in Paris?"
GREEDY = {"temperature": 0}


@pytest.fixture
def setup(make_fake):
    setup = make_fake()
    calls = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    setup.model(
        "templated",
        script=f"[INST] {QUESTION}[/INST][NOISE]{calls}",
        template=TEMPLATE,
        specials=SPECIALS,
    )
    setup.model(
        "base",
        script=f"[INST] {QUESTION}[/INST]Sure.[TOOL_CALLS]get_weather[ARGS]" + '{"city": "Paris"}',
        template=TEMPLATE,
        specials=SPECIALS,
    )
    created = setup.client.simulate_post(
        "/api/create",
        json={"model": "ministral", "from": "base", "parser": "ministral"},
    )
    assert created.status_code == 200, created.text
    return setup


def ask(client: ollama.Client, model: str, tools=(WEATHER,)):
    return client.chat(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        tools=list(tools),
        options=GREEDY,
    )


def test_a_template_tool_tag_that_is_a_control_token_reaches_the_tool_parser(setup):
    with setup.server() as server:
        reply = ask(ollama.Client(host=server.url), "templated")
    calls = reply.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris"}
    assert "[NOISE]" not in (reply.message.content or "")  # not preserved: no text


def test_without_tools_the_control_tokens_add_no_text(setup):
    with setup.server() as server:
        reply = ask(ollama.Client(host=server.url), "templated", tools=())
    assert reply.message.content == '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'


def test_a_builtin_parsers_preserved_tokens_reach_it(setup):
    rendered = setup.client.simulate_post(
        "/api/chat",
        json={
            "model": "ministral",
            "messages": [{"role": "user", "content": QUESTION}],
            "_debug_render_only": True,
            "stream": False,
        },
    ).json["_debug_info"]["rendered_template"]
    assert rendered.endswith(f"[INST] {QUESTION}[/INST]")
    with setup.server() as server:
        reply = ask(ollama.Client(host=server.url), "ministral")
    calls = reply.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris"}
    assert reply.message.content == "Sure."
