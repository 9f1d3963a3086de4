"""Our Go template interpreter against Go's own text/template: every answer in
reference/go_answers.json was printed by Go (reference/harness.go)."""

import json
from pathlib import Path

import pytest

from ollamakit.errors import BadRequest
from ollamakit.lib.templates import TemplateExecutionError, parse_template

REFERENCE = json.loads((Path(__file__).parent / "reference" / "go_answers.json").read_text())
DATA = REFERENCE["data"]


def run(text, data=DATA):
    return parse_template(text).execute(data)


@pytest.mark.parametrize("case", REFERENCE["semantics"], ids=lambda c: c["template"][:40])
def test_matches_go(case):
    if case["error"] is None:
        out = run(case["template"])
        # Go's harness does not append {{ .Response }} as Ollama does; our data has no Response.
        if out.endswith("<no value>") and not case["output"].endswith("<no value>"):
            out = out[: -len("<no value>")]
        assert out == case["output"]
    else:
        with pytest.raises((BadRequest, TemplateExecutionError)):
            run(case["template"])


def test_parse_errors_are_bad_requests_with_go_wording():
    with pytest.raises(BadRequest) as err:
        parse_template("{{ nosuchfunc .X }}")
    assert err.value.status == 400
    assert str(err.value) == 'template error: template: :1: function "nosuchfunc" not defined'
    with pytest.raises(BadRequest, match="unexpected EOF"):
        parse_template("line one\n{{ if .X }}open")
    with pytest.raises(BadRequest, match=r":2: undefined variable \"\$y\""):
        parse_template("ok\n{{ $y }}")


def test_execution_errors_are_500s_naming_the_call():
    with pytest.raises(TemplateExecutionError) as err:
        run('{{ lt 1 "a" }}')
    assert err.value.status == 500
    assert "error calling lt: incompatible types for comparison" in str(err.value)
    with pytest.raises(TemplateExecutionError, match="index out of range: 9"):
        run("{{ index .L 9 }}")


def test_trim_markers_need_a_space():
    assert run("a {{- 3 }}") == "a3<no value>"
    assert run("a {{-3 }} b") == "a -3 b<no value>"  # a negative number, not a trim marker


def test_nested_scopes_restore_dot_and_variables():
    out = run(
        '{{ $v := "outer" }}{{ with .Nested }}{{ with .Inner }}{{ .V }}{{ $v := "inner" }}{{ $v }}'
        "{{ end }}{{ $v }}{{ end }}{{ $v }}|{{ .A }}"
    )
    assert out == "deepinnerouterouter|x<no value>"


def test_range_over_map_is_sorted_and_break_continue():
    assert run("{{ range $k, $v := .M }}{{ $k }}{{ end }}") == "abk<no value>"
    assert (
        run("{{ range .L }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}") == "12<no value>"
    )
    assert (
        run("{{ range .L }}{{ if lt . 4 }}{{ continue }}{{ end }}{{ . }}{{ end }}")
        == "45<no value>"
    )


def test_range_over_integer_as_go_1_22():
    assert run("{{ range 3 }}{{ . }}{{ end }}") == "012<no value>"


def test_missing_keys_are_zero_but_struct_fields_are_checked():
    assert run("{{ if .Nope }}y{{ else }}n{{ end }}") == "n<no value>"
    assert run("{{ .Nope }}") == "<no value><no value>"


def test_response_is_appended_only_without_messages_or_response():
    assert parse_template("{{ .Prompt }}").execute({"Prompt": "p", "Response": "r"}) == "pr"
    assert (
        parse_template("{{ .Prompt }}{{ .Response }}!").execute({"Prompt": "p", "Response": "r"})
        == "pr!"
    )
    assert (
        parse_template("{{ range .Messages }}{{ end }}").execute({"Messages": [], "Response": "r"})
        == ""
    )


def test_vars_collects_fields_and_variables():
    t = parse_template(
        "{{ $.Messages }}{{ range .Tools }}{{ .Function.Name }}{{ end }}{{ (index .X 0).Y }}"
    )
    assert {"messages", "tools", "function", "name", "$"} <= set(t.vars)
    # Nothing inside a parenthesised value that has a field chained on it counts, as in Ollama.
    assert "x" not in t.vars and "y" not in t.vars


def test_define_template_block_and_depth_limit():
    assert (
        run(
            '{{ define "a" }}<{{ . }}>{{ end }}{{ template "a" 1 }}{{ block "b" 2 }}[{{ . }}]{{ end }}'
        )
        == "<1>[2]<no value>"
    )
    with pytest.raises(TemplateExecutionError, match="depth"):
        run('{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}')


def test_runaway_templates_are_stopped(monkeypatch):
    monkeypatch.setattr("ollamakit.lib.templates.executor.MAX_STEPS", 10_000)
    with pytest.raises(TemplateExecutionError, match="limit"):
        run("{{ range 100000000 }}{{ end }}")
