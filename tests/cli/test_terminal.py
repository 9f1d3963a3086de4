"""``ollamakit run`` in a real terminal (a pseudo-terminal driven by pexpect), against a real
``ollamakit serve`` running a tiny random llama model: what a person at the keyboard sees.

The model's answers are noise, so the tests read what the CLI says about them: ``--verbose``
counts tokens, and the model's tokenizer has one token per byte, so a prompt's token count
tells how many bytes reached the model. The model never ends an answer on its own (``endless``),
so an answer runs until ``num_predict`` or Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time

import httpx
import pexpect
import pytest

from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit_registry.testing import LocalRegistry, registry_binary

pytestmark = pytest.mark.slow

TEMPLATE = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM = "You are a tiny test model."


def create(server: ServerProcess, name: str, gguf, **request) -> None:
    data = gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    httpx.post(f"{server.url}/api/blobs/{digest}", content=data).raise_for_status()
    reply = httpx.post(
        f"{server.url}/api/create",
        json={"model": name, "files": {gguf.name: digest}, "stream": False, **request},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("terminal")
    (root / "models").mkdir()
    server = ServerProcess(root / "models").start()
    try:
        shape = {"n_layers": 1, "n_embd": 32, "n_heads": 2, "n_kv_heads": 1, "n_ff": 64}
        create(
            server,
            "tiny",
            tiny_llama(root / "tiny.gguf", endless=True, **shape),
            template=TEMPLATE,
            system=SYSTEM,
            license="MIT",
            parameters={"temperature": 0, "num_predict": 8},
        )
        create(
            server,
            "tiny-embed",
            tiny_llama(root / "embed.gguf", extra_metadata={"llama.pooling_type": 1}, **shape),
        )
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def environment(server, home, **extra) -> dict:
    env = {
        **os.environ,
        "OLLAMA_HOST": server.url,
        "HOME": str(home),
        "TERM": "xterm-256color",
        **extra,
    }
    for name in ("OLLAMA_NOHISTORY", "OLLAMA_EDITOR", "VISUAL", "EDITOR"):
        if name not in extra:
            env.pop(name, None)
    return env


def spawn(server, home, *args: str, **extra) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", *args],
        env=environment(server, home, **extra),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.delaybeforesend = 0.05
    return child


def command(server, home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ollamakit", *args],
        env=environment(server, home),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def say(child: pexpect.spawn, line: str, expect: str | None = None) -> str:
    """Type ``line`` at the prompt; return what was printed before the next prompt."""
    child.sendline(line)
    if expect:
        child.expect_exact(expect)
    child.expect_exact(">>> ")
    return child.before


def leave(child: pexpect.spawn) -> None:
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def eval_counts(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^eval count: +(\d+) token\(s\)", text, re.M)]


def test_set_parameter_and_show(server, home):
    child = spawn(server, home, "run", "tiny")
    child.expect_exact(">>> ")
    assert "Set parameter 'num_predict' to '3'" in say(child, "/set parameter num_predict 3")
    say(child, "/set verbose", "Set 'verbose' mode.")
    assert eval_counts(say(child, "hello")) == [3]  # the parameter reached the server
    shown = say(child, "/show parameters")
    assert "Model defined parameters:" in shown and re.search(
        r"User defined parameters:\r\n  num_predict {20}3\r\n", shown
    )
    assert f"{SYSTEM}\r\n" in say(child, "/show system")
    assert "MIT" in say(child, "/show license")
    assert "<|im_start|>assistant" in say(child, "/show template")
    info = say(child, "/show info")
    assert re.search(r"architecture +llama", info) and re.search(
        r"Capabilities\r\n +completion", info
    )
    say(child, "/set system Answer in French.", "Set system message.")
    assert "Answer in French.\r\n" in say(child, "/show system")
    leave(child)
    history = (home / ".ollama" / "history").read_text().splitlines()
    assert (
        history[:3] == ["/set parameter num_predict 3", "/set verbose", "hello"]
        and history[-1] == "/bye"
    )


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(server, home):
    child = spawn(server, home, "run", "tiny")
    child.expect_exact(">>> ")
    say(child, "/set parameter num_predict 100000")
    say(child, "/set verbose")
    child.sendline("tell me everything")
    child.expect_exact("tell me everything\r\n")
    time.sleep(1.5)  # the answer is streaming: it would take minutes to finish
    child.sendintr()
    child.expect_exact(">>> ")
    assert child.before.strip()  # part of an answer was printed,
    assert (
        "total duration" not in child.before
    )  # and it stopped: the timings of a finished answer never came
    say(child, "/set parameter num_predict 2")
    # The server runs one request at a time (OLLAMA_NUM_PARALLEL=1): this answer comes only
    # because the stopped one stopped on the server too.
    assert eval_counts(say(child, "and now briefly")) == [2]
    child.sendintr()  # at the prompt, Ctrl-C says how to leave
    child.expect_exact("Use Ctrl + d or /bye to exit.")
    child.expect_exact(">>> ")
    child.sendeof()  # Ctrl-D on an empty line leaves
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_multi_line_message(server, home):
    child = spawn(server, home, "run", "tiny")
    child.expect_exact(">>> ")
    child.sendline('"""first line')
    child.expect_exact("... ")
    child.sendline("second line")
    child.expect_exact("... ")
    child.sendline('third line"""')
    child.expect_exact(">>> ")
    say(child, "/save tiny-session", "Created new model 'tiny-session'")
    leave(child)
    messages = httpx.post(f"{server.url}/api/show", json={"model": "tiny-session"}).json()[
        "messages"
    ]
    assert messages[0] == {"role": "user", "content": "first line\nsecond line\nthird line"}
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_ctrl_g_edits_the_line_in_an_editor(server, home, tmp_path):
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf \'%s, edited\\n\' "$(cat "$1")" > "$1"\n')
    editor.chmod(0o755)
    child = spawn(server, home, "run", "tiny", OLLAMA_EDITOR=str(editor))
    child.expect_exact(">>> ")
    child.send("draft")
    child.send("\x07")  # Ctrl-G
    child.expect_exact(">>> draft, edited")  # back at the prompt, not sent yet
    child.sendline("")
    child.expect_exact(">>> ")
    say(child, "/save tiny-edited", "Created new model 'tiny-edited'")
    child.sendline("/? shortcuts")
    child.expect_exact("Ctrl + g            Open default editor to compose a prompt")
    child.expect_exact(">>> ")
    leave(child)
    messages = httpx.post(f"{server.url}/api/show", json={"model": "tiny-edited"}).json()[
        "messages"
    ]
    assert messages[0] == {"role": "user", "content": "draft, edited"}


def test_piped_stdin_comes_before_the_prompt(server, home):
    def prompt_count(shell: str) -> int:
        child = pexpect.spawn(
            "/bin/sh", ["-c", shell], env=environment(server, home), encoding="utf-8", timeout=60
        )
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        return int(re.search(r"prompt eval count: +(\d+) token", child.before).group(1))

    run = f"{sys.executable} -m ollamakit run --verbose tiny summarize"
    alone = prompt_count(run)
    piped = prompt_count(f"printf 'some notes' | {run}")
    assert piped - alone == len(
        "some notes "
    )  # one token a byte: the notes and the space joining them


def test_run_pulls_a_missing_model(server, home, tmp_path):
    if registry_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "docker-registry is not installed (scripts/test.sh installs Debian's docker-registry)"
            )
        pytest.skip("docker-registry is not installed")
    with LocalRegistry(tmp_path / "registry") as registry:
        name = f"{registry.host}/test/tiny"
        assert command(server, home, "cp", "tiny", name).returncode == 0
        pushed = command(server, home, "push", "--insecure", name)
        assert pushed.returncode == 0, pushed.stderr
        assert command(server, home, "rm", name).returncode == 0

        child = spawn(server, home, "run", "--insecure", name, "hello")
        child.expect_exact("pulling manifest")
        child.expect_exact("success")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
    listed = command(server, home, "list").stdout
    assert f"{name}:latest" in listed


def test_an_embedding_model_prints_its_vector(server, home):
    printed = command(server, home, "run", "tiny-embed", "hello world")
    assert printed.returncode == 0, printed.stderr
    vector = json.loads(printed.stdout)
    expected = httpx.post(
        f"{server.url}/api/embed", json={"model": "tiny-embed", "input": "hello world"}
    ).json()["embeddings"][0]
    assert vector == expected and len(vector) == 32
    short = json.loads(
        command(server, home, "run", "--dimensions", "4", "tiny-embed", "hello world").stdout
    )
    assert len(short) == 4 and abs(math.hypot(*short) - 1) < 1e-5
    missing = command(server, home, "run", "tiny-embed")
    assert missing.returncode == 1
    assert (
        missing.stderr
        == 'Error: embedding models require input text. Usage: ollamakit run tiny-embed "your text here"\n'
    )


def test_bare_command_is_ollamas_menu_and_comes_back(server, home):
    """Ollama's launcher menu: running a model, the pinned tools, More...; the model list with
    its cloud off; the menu again after the chat; the last choice and model kept."""
    child = spawn(server, home)
    child.expect_exact("Choice (number, or number> to pick the model; empty or Ctrl-D to quit)")
    menu = child.before
    assert " 1. Run a model\r\n      Start an interactive chat with a model" in menu
    assert (
        " 2. Launch Claude Code (install)\r\n      Anthropic's coding tool with subagents" in menu
    )
    assert " 3. Launch OpenCode (install)" in menu and " 4. Launch Hermes Agent (install)" in menu
    assert " 5. Launch OpenClaw (install)" in menu
    assert " 6. More...\r\n      Show additional integrations" in menu
    child.sendline("6")  # the other tools, in Ollama's order
    child.expect_exact("Choice (number")
    more = re.findall(r"^ +\d+\. Launch (.+?)(?: \(.*\))?\r$", child.before, re.M)
    assert more[:5] == ["Claude Code", "OpenCode", "Hermes Agent", "OpenClaw", "Hermes Desktop"]
    assert more[5:8] == ["Codex", "Copilot CLI", "Oh My Pi"]
    assert "ChatGPT" not in child.before  # not on Linux, as in Ollama's menu
    child.sendline("1")  # the model, from Ollama's arrow-key list
    child.expect_exact("esc cancel")
    listing = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    names = re.findall(r"^(?:▸ |  )(\S+)\r$", listing, re.M)
    assert names[:2] == ["gemma4", "qwen3.5"]  # recommended, not here
    assert "▸ gemma4" in listing and "cloud" not in listing
    child.send("tiny\r")  # typed: the list filtered, the exact name first
    child.expect_exact(">>> ")
    say(child, "/set parameter num_predict 2")
    child.sendline("/bye")
    child.expect_exact("Choice (number")  # the menu again, with the model run
    assert "> 1. Run a model (tiny)" in child.before
    saved = json.loads((home / ".ollama/config.json").read_text())
    assert saved["last_selection"] == "run" and saved["last_model"] == "tiny"
    child.sendline("1>")  # pick another model first
    child.expect_exact("esc cancel")
    child.send("tiny-embed\r")  # an embedding model cannot chat: its error, then the menu
    child.expect_exact("Error: embedding models require input text")
    child.expect_exact("Choice (number")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_bare_command_outside_a_terminal_prints_the_help(server, home):
    result = command(server, home)
    assert result.returncode == 0 and result.stdout.startswith("Usage: ollamakit")


class Screen:
    """What the terminal shows: everything the child prints, through a VT100 emulator (pyte)."""

    def __init__(self, child: pexpect.spawn, rows: int = 40, columns: int = 120):
        import pyte

        self.child = child
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.Stream(self.screen)
        child.logfile_read = self

    def write(self, text: str) -> None:
        self.stream.feed(text)

    def flush(self) -> None:
        pass

    def settle(self) -> None:
        """Read until the child has been quiet for a moment."""
        while True:
            try:
                self.child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                return

    def cursor_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()

    def cursor_column(self) -> int:
        return self.screen.cursor.x


def test_the_empty_line_shows_a_dim_placeholder(server, home):
    """As in Ollama: ``Send a message (/? for help)`` in grey while the line is empty, the
    cursor before it; gone with the first key, back when the line is empty again; ``Press Enter
    to send`` in a multi-line message."""
    child = spawn(server, home, "run", "tiny")
    screen = Screen(child)
    child.expect_exact("Send a message (/? for help)")
    screen.settle()
    assert screen.cursor_line() == ">>> Send a message (/? for help)"
    assert screen.cursor_column() == 4
    hint = screen.screen.buffer[screen.screen.cursor.y][4]
    assert hint.data == "S" and hint.fg == "8a8a8a"  # xterm colour 245

    child.send("hi")
    screen.settle()
    assert screen.cursor_line() == ">>> hi" and screen.cursor_column() == 6
    child.send("\x7f\x7f")  # backspace twice: empty again
    screen.settle()
    assert screen.cursor_line() == ">>> Send a message (/? for help)"
    assert screen.cursor_column() == 4

    child.sendintr()  # Ctrl-C on the empty line: the hint goes with the line
    child.expect_exact("Use Ctrl + d or /bye to exit.")
    screen.settle()
    lines = [line.rstrip() for line in screen.screen.display]
    assert ">>>" in lines and ">>> Send a message (/? for help)" in lines[-40:]
    assert lines.count(">>> Send a message (/? for help)") == 1  # only on the new prompt

    child.sendline('"""')
    child.expect_exact("Press Enter to send")
    screen.settle()
    assert screen.cursor_line() == "... Press Enter to send"
    child.send("two lines")
    screen.settle()
    assert screen.cursor_line() == "... two lines"
    child.sendline("")
    child.sendline('"""')
    child.expect_exact(">>> ")  # after the answer
    child.expect_exact("Send a message (/? for help)")
    screen.settle()
    assert screen.cursor_line() == ">>> Send a message (/? for help)"
    leave(child)
