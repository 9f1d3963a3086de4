"""``ollamakit run`` and its chat commands against a real HTTP server running the fake engine
(scripted answers, so what is printed can be compared exactly)."""

import json

import httpx
import pytest
from click.testing import CliRunner
from ollamakit_cli.client import Client
from ollamakit_cli.interactive import Session
from ollamakit_cli.lineinput import History
from ollamakit_cli.run import RunOptions
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

from ollamakit.cli import build_cli

THINKING_TEMPLATE = "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}"


@pytest.fixture
def served(make_fake):
    setup = make_fake()
    setup.model(params={"temperature": 0, "stop": ["\n"]}, system="You are a fake.")
    setup.model(
        "notes",
        script="Q: one\n summarize: first.\nQ: two\n summarize: second.\n",
        params={"temperature": 0, "stop": ["\n"]},
    )
    setup.model(
        "thinker",
        script="Q: one\nA:<think>Let me see.</think> the first answer.\n",
        template=THINKING_TEMPLATE,
        params={"temperature": 0, "stop": ["\n"]},
    )
    with setup.server() as server:
        yield setup, server.url


def invoke(url, *args, input=None):
    return CliRunner().invoke(build_cli(), list(args), env={"OLLAMA_HOST": url}, input=input)


def test_run_with_a_prompt_prints_the_answer(served):
    _, url = served
    result = invoke(url, "run", "fake", "Q: two\nA:")
    assert result.exit_code == 0, result.output
    assert result.output == " the second answer.\n\n"


def test_piped_stdin_comes_before_the_prompt(served):
    _, url = served
    # "Q: two\n" + " " + "summarize:" is in the script once: only the piped text makes it so
    result = invoke(url, "run", "notes", "summarize:", input="Q: two\n")
    assert result.exit_code == 0 and result.output == " second.\n\n"
    alone = invoke(url, "run", "fake", input="Q: one\nA:")
    assert alone.exit_code == 0 and alone.output == " the first answer.\n\n"


def test_verbose_prints_timings_as_go_durations(served):
    _, url = served
    result = invoke(url, "run", "--verbose", "fake", "Q: one\nA:")
    assert result.stdout == " the first answer.\n\n"
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "total duration",
        "load duration",
        "prompt eval count",
        "prompt eval duration",
        "prompt eval rate",
        "eval count",
        "eval duration",
        "eval rate",
    ]
    assert lines[5] == "eval count:           19 token(s)"  # the answer and the stop "\n"
    assert lines[0].endswith("s") and lines[7].endswith(" tokens/s")


def test_thinking_is_printed_or_hidden(served):
    _, url = served
    shown = invoke(url, "run", "thinker", "Q: one\nA:")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == "Thinking...\nLet me see.\n...done thinking.\n\nthe first answer.\n\n"
    hidden = invoke(url, "run", "--hidethinking", "thinker", "Q: one\nA:")
    assert hidden.stdout == "the first answer.\n\n"
    refused = invoke(url, "run", "--think", "fake", "Q: one\nA:")
    assert refused.exit_code == 1 and refused.stderr == 'Error: "fake" does not support thinking\n'


def test_a_missing_model_is_pulled_first(served):
    _, url = served
    # nothing listens on port 9: the pull is tried, and its failure is what is reported
    result = invoke(url, "run", "--insecure", "127.0.0.1:9/library/absent", "hi")
    assert result.exit_code == 1
    assert result.stderr.startswith("pulling manifest\n") and result.stderr.splitlines()[
        -1
    ].startswith("Error: ")


class Typed:
    """Lines as typed at the prompt; an exception in the list is raised as the key would."""

    def __init__(self, tmp_path, *lines):
        self.lines = iter(lines)
        self.history = History(tmp_path / "history")

    def read(self, prompt, placeholder=""):
        line = next(self.lines, EOFError())
        if isinstance(line, BaseException):
            raise line
        return line


def chat(url, tmp_path, capsys, *lines, model="fake"):
    with Client(url) as client:
        session = Session(
            client,
            RunOptions(model=model, word_wrap=False),
            think_explicit=False,
            reader=Typed(tmp_path, *lines),
        )
        session.run()
    return session, capsys.readouterr()


def test_chat_commands(served, tmp_path, capsys):
    _, url = served
    session, printed = chat(
        url,
        tmp_path,
        capsys,
        "/?",
        '"""Q: one',
        'A:"""',
        "/set system Be terse.",
        "/set system Be brief.",
        "/clear",
        "/bogus",
        "/set bogus",
        KeyboardInterrupt(),
        "Q: two\\nA:",
        "/bye",
        "never read",
    )
    assert printed.err.startswith("Available Commands:\n  /set            Set session variables\n")
    assert (
        '  /? shortcuts    Help for keyboard shortcuts\n\nUse """ to begin a multi-line message.\n\n'
        in printed.err
    )
    assert printed.out.splitlines() == [
        " the first answer.",
        "",
        "Set system message.",
        "Set system message.",
        "Cleared session context",
        "Unknown command '/bogus'. Type /? for help",
        "Unknown command '/set bogus'. Type /? for help",
        "",
        "Use Ctrl + d or /bye to exit.",
        " the first answer.",
        "",  # "\n" typed as two characters: the script's longest match is Q: one
    ]
    assert [m["role"] for m in session.opts.messages] == ["system", "user", "assistant"]
    assert session.opts.messages[0] == {
        "role": "system",
        "content": "Be brief.",
    }  # /clear keeps it; the second replaced the first
    assert next(session.reader.lines) == "never read"


def test_set_and_show(served, tmp_path, capsys):
    _, url = served
    session, printed = chat(
        url,
        tmp_path,
        capsys,
        "/show system",
        "/show license",
        "/show template",
        "/set parameter num_predict 4",
        "/set parameter temperature x",
        "/set parameter stop A B",
        "/show parameters",
        "/set format json",
        "/set format yaml",
        "/set noformat",
        "/set verbose",
        "/set quiet",
        "/set wordwrap",
        "/set nowordwrap",
        "/set nohistory",
        "hello",
        "/set history",
        "/show",
        "/set",
        "/set parameter",
        "/show info",
    )
    assert printed.out.split("\n") == [
        "You are a fake.",
        "",
        "No license was specified for this model.",
        "{{ .Prompt }}",
        "Set parameter 'num_predict' to '4'",
        'Couldn\'t set parameter: "invalid float value [x]"',
        "Set parameter 'stop' to 'A, B'",
        "Model defined parameters:",
        "  temperature                    0",
        '  stop                           "\\n"',
        "",
        "User defined parameters:",
        "  num_predict                    4",
        "  stop                           [A B]",
        "",
        "Set format to 'json' mode.",
        "Invalid or missing format. For 'json' mode use '/set format json'",
        "Disabled format.",
        "Set 'verbose' mode.",
        "Set 'quiet' mode.",
        "Set 'wordwrap' mode.",
        "Set 'nowordwrap' mode.",
        printed.out.split("\n")[22],
        "",
        "",  # the answer to "hello", and the line Ctrl-D ends
        "",
        "",
    ]
    assert session.opts.options == {"num_predict": 4, "stop": ["A", "B"]}
    assert session.reader.history.enabled is True
    err = printed.err
    assert "Available Commands:\n  /show info         Show details for this model\n" in err
    assert "Available Commands:\n  /set parameter ...     Set a parameter\n" in err
    assert (
        "Available Parameters:\n  /set parameter seed <int>             Random number seed\n" in err
    )
    assert err.endswith(
        '  Capabilities\n    completion\n\n  Parameters\n    temperature    0\n    stop           "\\n"\n\n'
        "  System\n    You are a fake.\n\n"
    )  # /show info


def test_think_on_a_model_that_cannot_warns_then_the_server_refuses(served, tmp_path, capsys):
    _, url = served
    session, printed = chat(
        url, tmp_path, capsys, "/set think", "Q: one\nA:", "/set nothink", "/set think high"
    )
    assert 'warning: model "fake" does not support thinking output' in printed.err
    assert printed.out.splitlines() == [
        "Set 'think' mode.",
        'error: "fake" does not support thinking',
        "Set 'nothink' mode.",
        "Set 'think' mode to 'high'.",
        "",
    ]
    assert session.opts.think == "high"


def test_load_and_save(served, tmp_path, capsys):
    setup, url = served
    session, printed = chat(
        url,
        tmp_path,
        capsys,
        "/load",
        "/load absent",
        "/set system Be terse.",
        "/set parameter temperature 0.5",
        "Q: two\nA:",
        "/save Not:A:Name",
        "/save snapshot",
        "/load thinker",
        "Q: one\nA:",
    )
    lines = printed.out.splitlines()
    assert lines[:6] == [
        "Usage:",
        "  /load <modelname>",
        "Loading model 'absent'",
        "Couldn't find model 'absent'",
        "Set system message.",
        "Set parameter 'temperature' to '0.5'",
    ]
    assert lines[6:] == [
        " the second answer.",
        "",
        "error: The model name 'Not:A:Name' is invalid",
        "Created new model 'snapshot'",
        "Loading model 'thinker'",
        "\x1b[38;5;245m\x1b[1mThinking...",
        "\x1b[0m\x1b[38;5;245mLet me see.",
        "\x1b[38;5;245m\x1b[1m...done thinking.",
        "",
        "\x1b[0mthe first answer.",
        "",
        "",
    ]
    saved = httpx.post(f"{url}/api/show", json={"model": "snapshot"}).json()
    assert saved["system"] == "Be terse."
    assert json.loads(json.dumps(saved["messages"])) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Q: two\nA:"},
        {"role": "assistant", "content": " the second answer."},
    ]
    assert ["temperature", "0.5"] in [line.split() for line in saved["parameters"].splitlines()]
    assert (
        session.opts.model == "thinker" and session.opts.think is True
    )  # a thinking model thinks unless told not to
