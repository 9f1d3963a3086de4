"""The GGUF Jinja sandbox, and the capabilities and tags read from templates."""

import pytest

from ollamakit.lib.templates import (
    ChatTemplateError,
    jinja_capabilities,
    parse_template,
    render_jinja,
    template_capabilities,
)

MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% set x = messages.append({'role': 'x'}) %}",
        "{{ messages[0].update({'role': 'x'}) }}",
        "{{ raise_exception.__globals__ }}",
        "{{ raise_exception.__globals__['__builtins__'] }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_refuses_escapes(escape):
    # Either an error (a 500) or an unsafe attribute read as undefined: nothing leaks out.
    try:
        out = render_jinja(escape, MSGS)
    except ChatTemplateError as err:
        assert err.status == 500
    else:
        assert out == ""
    assert MSGS == [{"role": "user", "content": "hi"}]


def test_template_errors_are_clear():
    with pytest.raises(ChatTemplateError, match="System role not supported"):
        render_jinja("{{ raise_exception('System role not supported') }}", MSGS)
    with pytest.raises(ChatTemplateError, match="chat template error"):
        render_jinja("{% for %}", MSGS)


def test_hugging_face_conventions():
    out = render_jinja(
        "{{ bos_token }}{{ messages[0]['content'] }}{{ tools | tojson }}{{ strftime_now('%Y') | length }}"
        "{% if add_generation_prompt %}!{% endif %}{{ eos_token }}",
        MSGS,
        tools=[{"type": "function", "function": {"name": "f"}}],
        bos_token="<s>",
        eos_token="</s>",
    )
    assert out == '<s>hi[{"type": "function", "function": {"name": "f"}}]4!</s>'


def test_tool_calls_reach_jinja_as_objects():
    msgs = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        }
    ]
    out = render_jinja(
        "{% for c in messages[0].tool_calls %}{{ c.function.name }}{{ c.function.arguments.a }}{% endfor %}",
        msgs,
    )
    assert out == "f1"


def test_go_template_capabilities():
    assert template_capabilities("{{ .Prompt }}") == set()
    assert template_capabilities(
        "{{ if .Tools }}{{ .Tools }}{{ end }}{{ range .Messages }}{{ end }}"
    ) == {"tools"}
    assert template_capabilities("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>") == {"insert"}
    assert template_capabilities("{{ broken") == set()
    thinking = (
        "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
        "{{ .Content }}{{ end }}"
    )
    assert template_capabilities(thinking) == {"thinking"}
    assert parse_template(thinking).thinking_tags() == ("<think>", "</think>")
    # .Thinking outside a range over .Messages says nothing.
    assert (
        template_capabilities("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}") == set()
    )


def test_tool_call_tag():
    t = parse_template(
        "{{ range .Messages }}{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}"
        '{"name": "{{ .Function.Name }}"}{{ end }}</tool_call>{{ end }}{{ end }}'
    )
    assert t.tool_call_tag() == "<tool_call>"
    assert (
        parse_template(
            "{{ range .Messages }}{{ if .ToolCalls }}{{ .ToolCalls }}{{ end }}{{ end }}"
        ).tool_call_tag()
        == "{"
    )
    assert (
        parse_template('{{ if .ToolCalls }}[TOOL_CALLS] {"a": 1}{{ end }}').tool_call_tag()
        == "[TOOL_CALLS]"
    )


def test_jinja_capabilities():
    assert jinja_capabilities("{% if tools %}{% endif %}") == {"tools"}
    assert jinja_capabilities("<think>{{ x }}</think>") == {"thinking"}
    assert jinja_capabilities("{{ content.split('</think>')[-1] }}") == {"thinking"}
    assert jinja_capabilities("{{ content.split('</think>') }}{{ reasoning_content }}") == set()
    assert jinja_capabilities("") == set()
