"""A real HTTP server with fake models: one that answers tool calls, one that thinks."""

from __future__ import annotations

import pytest

from ollamakit_scheduler.fixtures import FakeSetup, fake, make_fake  # noqa: F401 (fixtures)

TOOLS_TEMPLATE = (
    '{{ if .Tools }}{{ end }}{{ range .Messages }}{{ if eq .Role "tool" }}R: {{ .Content }}\n'
    "{{ else if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}"
    "</tool_call>\n{{ else }}{{ .Content }}{{ end }}{{ end }}"
)
TOOLS_SCRIPT = (
    'Q: weather?\nA: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
    'Q: news?\nA: <tool_call>{"arguments": {"query": "ollama news"}, "name": "web_search"}</tool_call>\n'
)
THINK_TEMPLATE = (
    "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"
    "{{ if .Think }}<think>{{ end }}"
)
THINK_SCRIPT = "Q: why?\nA:<think>because</think> it is.\n"


@pytest.fixture
def setup(make_fake) -> FakeSetup:
    setup = make_fake()
    setup.model("fake")
    setup.model("tooly", TOOLS_SCRIPT, template=TOOLS_TEMPLATE)
    setup.model("thinker", THINK_SCRIPT, template=THINK_TEMPLATE)
    return setup


@pytest.fixture
def server(setup):
    with setup.server() as running:
        yield running
