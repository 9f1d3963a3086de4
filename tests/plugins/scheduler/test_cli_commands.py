"""``ollamakit run``, ``ps`` and ``stop`` against a real server running the fake engine."""

import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli
from ollamakit_cli import run as run_module
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)


@pytest.fixture
def served(make_fake):
    setup = make_fake()
    setup.model(params={"temperature": 0, "stop": ["\n"]})
    with setup.server() as server:
        yield setup, server.url


def invoke(url, *args, input=None):
    return CliRunner().invoke(build_cli(), list(args), env={"OLLAMA_HOST": url}, input=input)


def test_run_with_a_prompt_prints_the_answer(served):
    _, url = served
    result = invoke(url, "run", "fake", "Q: two\nA:")
    assert result.exit_code == 0, result.output
    assert result.output == " the second answer.\n"


def test_run_reads_the_prompt_from_stdin(served):
    _, url = served
    result = invoke(url, "run", "fake", input="Q: one\nA:")
    assert result.exit_code == 0 and result.output == " the first answer.\n"


def test_run_verbose_prints_timings(served):
    _, url = served
    result = CliRunner().invoke(build_cli(), ["run", "--verbose", "fake", "Q: one\nA:"], env={"OLLAMA_HOST": url})
    assert "eval rate:" in result.output and "prompt eval count:" in result.output


def test_run_unknown_model_is_an_error(served):
    _, url = served
    result = invoke(url, "run", "nope", "hi")
    assert result.exit_code != 0 and "model 'nope' not found" in result.output


def test_interactive_chat_loop(served, monkeypatch, capsys):
    from ollamakit_cli.client import Client

    _, url = served
    typed = iter(["/?", '"""Q: one', 'A:"""', "/clear", "Q: two\\nA:", "/bogus", "/bye", "never read"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    with Client(url) as client:
        run_module.chat_loop(client, {"model": "fake"}, verbose=False)
    out = capsys.readouterr().out
    assert "/bye" in out  # the help text
    assert " the first answer." in out
    assert "Cleared session context" in out
    assert "Unknown command '/bogus'" in out
    assert next(typed) == "never read"


def test_multiline_input(monkeypatch):
    typed = iter(['"""first', "second", 'third"""'])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    assert run_module.read_message() == "first\nsecond\nthird"
    typed = iter(['"""one line"""'])
    assert run_module.read_message() == "one line"


def test_ps_and_stop(served):
    setup, url = served
    assert invoke(url, "ps").output.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    setup.client.simulate_post("/api/generate", json={"model": "fake"})
    listed = invoke(url, "ps").output
    assert "fake:latest" in listed and "100% CPU" in listed and "from now" in listed
    assert invoke(url, "stop", "fake").exit_code == 0
    assert "fake:latest" not in invoke(url, "ps").output
    missing = invoke(url, "stop", "fake")
    assert missing.exit_code != 0 and "couldn't find model" in missing.output
