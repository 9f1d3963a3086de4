"""``run``'s flags, the chat's commands and what they print, without a server."""

import io
import os

import click
import pytest
from click.testing import CliRunner
from ollamakit_cli.display import (
    AnswerPrinter,
    Spinner,
    WordWrap,
    go_duration,
    go_value,
    summary_lines,
)
from ollamakit_cli.formatting import go_quote
from ollamakit_cli.interactive import parameter
from ollamakit_cli.lineinput import History, env_flag
from ollamakit_cli.run import (
    RunCommand,
    format_value,
    keep_alive_value,
    parse_think,
    parse_truncate,
)

from ollamakit import OLLAMA_VERSION, __version__
from ollamakit.cli import build_cli
from ollamakit.cli.version import version_lines


def parsed(*args):
    """The values ``run`` would get for ``args``."""
    seen = {}

    @click.command(cls=RunCommand)
    @click.argument("model")
    @click.argument("prompt", nargs=-1)
    @click.option("--think", default=None)
    @click.option("--truncate", default=None)
    @click.option("--verbose", is_flag=True)
    def command(**kwargs):
        seen.update(kwargs)

    result = CliRunner().invoke(command, list(args))
    assert result.exit_code == 0, result.output
    return seen


def test_think_and_truncate_take_a_value_only_when_attached():
    # as with Ollama's --think (NoOptDefVal): the next word stays an argument
    assert parsed("--think", "m", "hi") == {
        "model": "m",
        "prompt": ("hi",),
        "think": "true",
        "truncate": None,
        "verbose": False,
    }
    assert parsed("m", "--think=high", "hi")["think"] == "high"
    assert parsed("--truncate=false", "m")["truncate"] == "false"
    assert parsed("--truncate", "m")["truncate"] == "true"
    assert parsed("m", "--", "--think")["prompt"] == ("--think",)
    assert parsed("m", "--verbose", "a", "b")["prompt"] == ("a", "b")


def test_think_values():
    assert parse_think("true") is True and parse_think("") is True
    assert parse_think("false") is False
    assert [parse_think(v) for v in ("high", "medium", "low", "max")] == [
        "high",
        "medium",
        "low",
        "max",
    ]
    with pytest.raises(click.ClickException) as info:
        parse_think("extreme")
    assert (
        info.value.message
        == 'invalid value for --think: "extreme" (must be true, false, high, medium, low, or max)'
    )
    assert (
        parse_truncate(None) is None
        and parse_truncate("false") is False
        and parse_truncate("1") is True
    )
    with pytest.raises(click.ClickException):
        parse_truncate("maybe")


def test_keepalive_is_sent_as_ollama_sends_it():
    assert keep_alive_value("5m") == "5m0s"
    assert keep_alive_value("1h30m") == "1h30m0s"
    assert keep_alive_value("300ms") == "300ms"
    assert keep_alive_value("0") == "0s"
    assert keep_alive_value("-1s") == -1
    with pytest.raises(click.ClickException) as info:
        keep_alive_value("soon")
    assert info.value.message == 'time: invalid duration "soon"'


def test_format_is_json_or_a_schema():
    assert format_value("") is None
    assert format_value("json") == "json"
    assert format_value('{"type": "object"}') == {"type": "object"}
    with pytest.raises(click.ClickException):
        format_value("yaml")


@pytest.mark.parametrize(
    "ns, text",
    [
        (0, "0s"),
        (999, "999ns"),
        (1500, "1.5µs"),
        (12_345_678, "12.345678ms"),
        (1_000_000_000, "1s"),
        (2_500_000_000, "2.5s"),
        (61_000_000_000, "1m1s"),
        (3_723_000_000_001, "1h2m3.000000001s"),
    ],
)
def test_durations_as_go_prints_them(ns, text):
    assert go_duration(ns) == text


def test_verbose_summary_lines():
    final = {
        "total_duration": 2_500_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 10,
        "prompt_eval_duration": 500_000_000,
        "eval_count": 20,
        "eval_duration": 1_000_000_000,
    }
    assert summary_lines(final) == [
        "total duration:       2.5s",
        "load duration:        1ms",
        "prompt eval count:    10 token(s)",
        "prompt eval duration: 500ms",
        "prompt eval rate:     20.00 tokens/s",
        "eval count:           20 token(s)",
        "eval duration:        1s",
        "eval rate:            20.00 tokens/s",
    ]
    assert summary_lines({"eval_count": 3}) == ["eval count:           3 token(s)"]


def test_set_parameter_types_values_as_ollama_does():
    assert parameter("num_predict", ["5"]) == 5
    assert parameter("temperature", ["0.7"]) == 0.7
    assert parameter("stop", ["<|im_end|>", "User:"]) == ["<|im_end|>", "User:"]
    assert parameter("use_mmap", ["false"]) is False
    for name, values, message in (
        ("bogus", ["1"], "unknown parameter 'bogus'"),
        ("num_ctx", ["big"], "invalid int value [big]"),
        ("seed", ["1_0"], "invalid int value [1_0]"),
        ("seed", [str(2**63)], f"invalid int value [{2**63}]"),
        ("temperature", ["nan"], "invalid float value [nan]"),
        ("top_p", ["x", "y"], "invalid float value [x y]"),
    ):
        with pytest.raises(ValueError) as info:
            parameter(name, values)
        assert str(info.value) == message
    assert go_quote("unknown parameter 'x'") == "\"unknown parameter 'x'\""
    assert go_value(["a", "b"]) == "[a b]" and go_value(True) == "true" and go_value(0.7) == "0.7"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_word_wrap_moves_the_last_word_to_the_next_line(monkeypatch):
    monkeypatch.setattr("ollamakit_cli.display.terminal_width", lambda stream: 20)
    out = Terminal()
    WordWrap(out, wrap=True).write("the quick brown fox jumps")
    # 15 columns fit (width - 5): "brown" was written, then erased and written again below
    assert out.getvalue() == "the quick brown\x1b[5D\x1b[K\nbrown fox jumps"
    plain = io.StringIO()  # not a terminal: never wrapped, no escape sequences
    WordWrap(plain, wrap=True).write("the quick brown fox jumps")
    assert plain.getvalue() == "the quick brown fox jumps"


def test_thinking_is_framed_or_hidden():
    def printed(hide):
        out = io.StringIO()
        printer = AnswerPrinter(
            out,
            wrap=False,
            hide_thinking=hide,
            plain=True,
            spinner=Spinner(io.StringIO()),
            tools_first=False,
        )
        for thinking, content in (("Let me", ""), (" see.", ""), ("", "Four."), ("", " Done.")):
            printer.feed(thinking, content, [])
        return out.getvalue(), "".join(printer.content), "".join(printer.thinking)

    assert printed(False) == (
        "Thinking...\nLet me see.\n...done thinking.\n\nFour. Done.",
        "Four. Done.",
        "Let me see.",
    )
    assert printed(True) == ("Four. Done.", "Four. Done.", "")


def test_tool_calls_are_reported_as_unexpected():
    out = io.StringIO()
    printer = AnswerPrinter(
        out,
        wrap=False,
        hide_thinking=False,
        plain=True,
        spinner=Spinner(io.StringIO()),
        tools_first=True,
    )
    printer.feed("", "", [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    assert (
        out.getvalue()
        == '  Model called a non-existent function \'get_weather()\' with arguments: {"city":"Paris"}'
    )


def test_history_keeps_the_last_hundred_lines_and_can_stop_saving(tmp_path):
    path = tmp_path / ".ollama" / "history"
    history = History(path)
    for i in range(105):
        history.add(f"line {i}")
    assert path.read_text().splitlines() == [f"line {i}" for i in range(5, 105)]
    again = History(path, enabled=False)
    assert again.lines[-1] == "line 104"
    again.add("not saved")
    assert "not saved" not in path.read_text() and again.lines[-1] == "not saved"
    assert sorted(p.name for p in path.parent.iterdir()) == ["history"]  # no temporary left


def test_a_history_save_leaves_another_chats_temporary_alone(tmp_path):
    """Two chats at once: each writes a temporary of its own, so one's save cannot truncate
    and rename away the file the other is still writing."""
    path = tmp_path / "history"
    others = tmp_path / "history.tmp"  # the name every chat used to write
    others.write_text("the other chat's lines, half written\n")
    History(path).add("mine")
    assert path.read_text() == "mine\n"
    assert others.read_text() == "the other chat's lines, half written\n"


@pytest.mark.parametrize(
    "value, expected",
    [("", False), ("0", False), ("false", False), ("1", True), ("true", True), ("yes", True)],
)
def test_nohistory_is_read_as_ollama_reads_booleans(monkeypatch, value, expected):
    monkeypatch.setenv("OLLAMA_NOHISTORY", value)
    assert env_flag("OLLAMA_NOHISTORY") is expected


def test_version_lines():
    assert version_lines((OLLAMA_VERSION, __version__)) == [
        f"ollama version is {OLLAMA_VERSION} (ollamakit {__version__})"
    ]
    assert version_lines(("0.12.0", None)) == [
        "ollama version is 0.12.0",
        f"Warning: client version is {OLLAMA_VERSION} (ollamakit {__version__})",
    ]
    assert version_lines(None) == [
        "Warning: could not connect to a running Ollama instance",
        f"Warning: client version is {OLLAMA_VERSION} (ollamakit {__version__})",
    ]


def test_help_verb_and_start_alias():
    cli = build_cli()
    runner = CliRunner()
    assert runner.invoke(cli, ["help"]).output == runner.invoke(cli, ["--help"]).output
    run_help = runner.invoke(cli, ["help", "run"]).output
    assert run_help.startswith(
        "Usage: cli run [OPTIONS] MODEL [PROMPT]..."
    )  # "cli": CliRunner names the program
    for flag in (
        "--think",
        "--hidethinking",
        "--nowordwrap",
        "--insecure",
        "--truncate",
        "--dimensions",
        "--format",
        "--keepalive",
        "--verbose",
    ):
        assert flag in run_help
    unknown = runner.invoke(cli, ["help", "nosuchverb"])
    assert unknown.exit_code == 0 and unknown.output.startswith(
        "Unknown help topic [`nosuchverb`]\nUsage: cli [OPTIONS]"
    )
    launch_help = runner.invoke(cli, ["help", "launch"]).output
    assert launch_help.startswith("Usage: cli launch [OPTIONS] [INTEGRATION] [-- [EXTRA_ARGS...]]")
    listed = runner.invoke(cli, ["--help"]).output
    assert "  serve " in listed and "  start " not in listed  # an alias, as in Ollama: not listed
    assert (
        runner.invoke(cli, ["start", "--help"]).output.replace("start", "serve")
        == runner.invoke(cli, ["serve", "--help"]).output
    )


def test_every_run_flag_and_chat_command_is_documented():
    from pathlib import Path

    from ollamakit_cli.interactive import USAGE_SET, USAGE_SHOW

    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for option in build_cli().commands["run"].params:
        for flag in option.opts:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in text, f"docs/configuration.md does not document run {flag}"
    for line in (USAGE_SET + USAGE_SHOW).splitlines()[1:]:
        words = line.split()
        if len(words) >= 2 and words[0] in ("/set", "/show"):
            assert f"`{words[0]} {words[1]}" in text, (
                f"docs/configuration.md does not document {words[0]} {words[1]}"
            )


def test_what_run_sends():
    from ollamakit_cli.run import RunOptions, request_body

    opts = RunOptions(
        model="m",
        format='{"type": "object"}',
        options={"num_predict": 3},
        keep_alive="5m0s",
        think="high",
    )
    assert request_body(opts) == {
        "model": "m",
        "options": {"num_predict": 3},
        "stream": True,
        "format": {"type": "object"},
        "keep_alive": "5m0s",
        "think": "high",
    }
    assert request_body(RunOptions(model="m")) == {
        "model": "m",
        "options": {},
        "stream": True,
    }  # unset: left to the server


def test_a_models_stored_messages_open_the_chat(capsys):
    from ollamakit_cli.run import RunOptions, show_stored_messages

    show_stored_messages(
        RunOptions(model="m", word_wrap=False),
        [
            {"role": "system", "content": "hidden"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"},
        ],
    )
    assert capsys.readouterr().out == ">>> hello\nhi there\n\n"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_media_paths_in_a_prompt_are_attached(tmp_path, capsys):
    import base64

    from ollamakit_cli.attachments import extract

    (tmp_path / "my pic.png").write_bytes(PNG)
    escaped = str(tmp_path / "my pic.png").replace(" ", "\\ ")
    text, images = extract(f"what is in {escaped} and /no/such/file.jpg")
    assert text == "what is in  and /no/such/file.jpg"  # a path to no file stays text
    assert images == [base64.b64encode(PNG).decode()]
    assert capsys.readouterr().err == f"Added image '{tmp_path / 'my pic.png'}'\n"
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(click.ClickException) as info:
        extract(f"look at {tmp_path / 'fake.png'}")
    assert info.value.message == "invalid file type: application/octet-stream"
    assert (
        capsys.readouterr().err
        == 'Couldn\'t process file: "invalid file type: application/octet-stream"\n'
    )


def test_in_the_chat_a_path_is_a_message_for_a_model_that_sees(tmp_path, monkeypatch, capsys):
    from ollamakit_cli import interactive
    from ollamakit_cli.run import RunOptions

    sent = []
    monkeypatch.setattr(interactive, "chat", lambda client, opts: sent.append(list(opts.messages)))
    (tmp_path / "cat.png").write_bytes(PNG)

    class Reader:
        history = History(tmp_path / "history")

    seeing = interactive.Session(
        None, RunOptions(model="m", multimodal=True), False, reader=Reader()
    )
    seeing.handle(f"{tmp_path / 'cat.png'} what is this?")
    assert sent[0][-1]["content"] == "what is this?" and len(sent[0][-1]["images"]) == 1
    seeing.handle("/?")
    assert (
        "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n"
        in capsys.readouterr().err
    )
    blind = interactive.Session(None, RunOptions(model="m"), False, reader=Reader())
    blind.handle(f"{tmp_path / 'cat.png'} what is this?")
    assert (
        capsys.readouterr().out == f"Unknown command '{tmp_path / 'cat.png'}'. Type /? for help\n"
        and len(sent) == 1
    )


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_history_that_is_not_a_file_is_no_history(tmp_path, kind):
    """``run`` reads ~/.ollama/history as it starts: a FIFO there is not waited on for a writer
    (the chat never started), a folder is no error."""
    import threading

    path = tmp_path / "history"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    found: list = []
    reader = threading.Thread(target=lambda: found.append(History(path).lines), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # let the blocked reader see an end of file, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert found == [[]]
