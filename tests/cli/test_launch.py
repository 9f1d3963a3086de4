"""``ollamakit launch``: each integration set up as Ollama's ``launch`` sets it up, over a real
server, with fake tools on PATH in a temporary HOME. A fake tool records the arguments and the
environment it was started with, so the tests read exactly what the tool would have seen, and
the config files exactly as the tool would read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pexpect
import pytest
import yaml

from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama

FAKE_TOOL = f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("FAKE_VERSION", "tool 1.0.0"))
    sys.exit(0)
with open(os.environ["FAKE_RECORD"], "w") as fh:
    json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, fh)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    (root / "models").mkdir()
    server = ServerProcess(root / "models").start()
    try:
        gguf = tiny_llama(
            root / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
        )
        data = gguf.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        httpx.post(f"{server.url}/api/blobs/{digest}", content=data).raise_for_status()
        for name in ("tiny", "tiny-two"):
            reply = httpx.post(
                f"{server.url}/api/create",
                json={"model": name, "files": {gguf.name: digest}, "stream": False},
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
        yield server
    finally:
        server.stop()


class Machine:
    """A HOME and a PATH holding only the fake tools named."""

    def __init__(self, server: ServerProcess, root: Path):
        self.server = server
        self.home = root / "home"
        self.bin = root / "bin"
        self.record = root / "record.json"
        self.home.mkdir()
        self.bin.mkdir()

    def tool(self, name: str, folder: Path | None = None) -> Path:
        path = (folder or self.bin) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FAKE_TOOL)
        path.chmod(0o755)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OLLAMA", "FAKE_")) and key != "PATH"
        }
        return {
            **env,
            "HOME": str(self.home),
            "PATH": str(self.bin),
            "OLLAMA_HOST": self.server.url,
            "FAKE_RECORD": str(self.record),
            "TERM": "xterm-256color",
            **extra,
        }

    def launch(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ollamakit", "launch", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def started(self) -> dict:
        return json.loads(self.record.read_text())

    def file(self, relative: str):
        text = (self.home / relative).read_text()
        return json.loads(text) if relative.endswith(".json") else text

    def saved(self) -> dict:
        return self.file(".ollama/config.json")["integrations"]


@pytest.fixture
def machine(server, tmp_path):
    return Machine(server, tmp_path)


def test_claude_gets_the_server_as_its_anthropic_endpoint(machine):
    machine.tool("claude")
    done = machine.launch("claude", "--model", "tiny", "--", "--verbose", "-p", "hi")
    assert done.returncode == 0, done.stderr
    started = machine.started()
    assert started["argv"][1:] == ["--model", "tiny", "--verbose", "-p", "hi"]
    env = started["env"]
    assert env["ANTHROPIC_BASE_URL"] == machine.server.url
    assert env["ANTHROPIC_API_KEY"] == ""
    assert env["ANTHROPIC_AUTH_TOKEN"] == "ollama"
    for tier in ("OPUS", "SONNET", "HAIKU"):
        assert env[f"ANTHROPIC_DEFAULT_{tier}_MODEL"] == "tiny"
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "tiny"
    assert env["DISABLE_ERROR_REPORTING"] == "1"
    assert env["HOME"] == str(machine.home)  # the rest of the environment is passed on
    assert machine.saved() == {"claude": {"models": ["tiny"]}}


@pytest.mark.parametrize(
    ("name", "args", "env"),
    [
        (
            "copilot",
            ["--model", "tiny"],
            {
                "COPILOT_PROVIDER_BASE_URL": "{url}/v1",
                "COPILOT_PROVIDER_API_KEY": "",
                "COPILOT_PROVIDER_WIRE_API": "responses",
                "COPILOT_MODEL": "tiny",
            },
        ),
        (
            "pool",
            ["-m", "tiny"],
            {"POOLSIDE_STANDALONE_BASE_URL": "{url}/v1", "POOLSIDE_API_KEY": "ollama"},
        ),
    ],
)
def test_tools_set_up_by_their_environment(machine, name, args, env):
    machine.tool(name)
    done = machine.launch(name, "--model", "tiny")
    assert done.returncode == 0, done.stderr
    started = machine.started()
    assert started["argv"][1:] == args
    for key, value in env.items():
        assert started["env"][key] == value.format(url=machine.server.url)


def test_an_alias_names_the_integration(machine):
    machine.tool("copilot")
    assert machine.launch("copilot-cli", "--model", "tiny").returncode == 0
    assert machine.saved() == {"copilot": {"models": ["tiny"]}}


def test_codex_gets_a_profile_and_a_model_catalog(machine):
    machine.tool("codex")
    done = machine.launch(
        "codex",
        "--model",
        "tiny",
        "--",
        "--sandbox",
        "workspace-write",
        FAKE_VERSION="codex-cli 0.140.0",
    )
    assert done.returncode == 0, done.stderr
    url, home = machine.server.url, machine.home
    catalog = f"{home}/.codex/model.json"
    assert machine.started()["argv"][1:] == [
        "--profile", "ollama-launch",
        "-c", 'model_provider="ollama-launch"',
        "-c", 'model_providers.ollama-launch.name="Ollama"',
        "-c", f'model_providers.ollama-launch.base_url="{url}/v1/"',
        "-c", 'model_providers.ollama-launch.wire_api="responses"',
        "-c", f'model_catalog_json="{catalog}"',
        "-m", "tiny",
        "--sandbox", "workspace-write",
    ]  # fmt: skip
    assert machine.started()["env"]["OPENAI_API_KEY"] == "ollama"
    assert machine.file(".codex/ollama-launch.config.toml") == textwrap.dedent(f"""\
        model = "tiny"
        model_provider = "ollama-launch"
        model_catalog_json = "{catalog}"

        [model_providers.ollama-launch]
        name = "Ollama"
        base_url = "{url}/v1/"
        wire_api = "responses"
        """)
    (entry,) = machine.file(".codex/model.json")["models"]
    assert entry["slug"] == entry["display_name"] == "tiny"
    assert entry["context_window"] == 256  # the model's own, from /api/tags
    assert entry["input_modalities"] == ["text"]
    assert entry["truncation_policy"] == {"mode": "bytes", "limit": 10000}
    assert not (home / ".codex/config.toml").exists()  # the user's own config is not touched

    restored = machine.launch("codex", "--restore")
    assert restored.returncode == 0, restored.stderr
    assert restored.stderr == "Codex launch configuration removed.\n"
    assert not (home / ".codex/ollama-launch.config.toml").exists()
    assert not (home / ".codex/model.json").exists()


def test_codex_profile_left_in_config_toml_by_earlier_launchers_is_taken_out(machine):
    machine.tool("codex")
    config = machine.home / ".codex/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        '# mine\nprofile = "ollama-launch"\nmodel = "gpt-5"\n\n'
        '[profiles.ollama-launch]\nmodel = "old"\nmodel_provider = "ollama-launch"\n\n'
        '[mcp_servers.docs]\ncommand = "docs-server"\n'
    )
    done = machine.launch("codex", "--model", "tiny", FAKE_VERSION="codex-cli 0.140.0")
    assert done.returncode == 0, done.stderr
    assert config.read_text() == (
        '# mine\nmodel = "gpt-5"\n\n[mcp_servers.docs]\ncommand = "docs-server"\n'
    )
    (backup,) = (machine.home / ".ollama/backup/codex").iterdir()
    assert "[profiles.ollama-launch]" in backup.read_text()
    # A config.toml without them is not rewritten.
    assert (
        machine.launch("codex", "--model", "tiny", FAKE_VERSION="codex-cli 0.140.0").returncode == 0
    )
    assert len(list((machine.home / ".ollama/backup/codex").iterdir())) == 1


def test_codex_too_old_or_given_clashing_arguments_does_not_start(machine):
    machine.tool("codex")
    old = machine.launch("codex", "--model", "tiny", FAKE_VERSION="codex-cli 0.87.0")
    assert old.returncode == 1
    assert "codex version 0.87.0 is too old, minimum required is 0.134.0" in old.stderr
    clash = machine.launch(
        "codex",
        "--model",
        "tiny",
        "--",
        "-c",
        "model_provider=openai",
        FAKE_VERSION="codex-cli 0.140.0",
    )
    assert clash.returncode == 1
    assert "manages provider and model catalog config" in clash.stderr
    assert not machine.record.exists()


def test_droid_settings_keep_the_users_own(machine):
    machine.tool("droid")
    settings = machine.home / ".factory/settings.json"
    settings.parent.mkdir(parents=True)
    mine = {"model": "gpt-5", "apiKey": "sk-mine", "baseUrl": "https://example.com", "extra": 1}
    settings.write_text(json.dumps({
        "theme": "dark",
        "customModels": [mine, {"model": "old", "apiKey": "ollama"}],
        "sessionDefaultSettings": {"autonomy": "high", "reasoningEffort": "low"},
    }))  # fmt: skip
    done = machine.launch("droid", "--model", "tiny", "--", "exec", "hi")
    assert done.returncode == 0, done.stderr
    assert machine.started()["argv"][1:] == ["exec", "hi"]
    written = machine.file(".factory/settings.json")
    assert written["theme"] == "dark"
    assert written["customModels"] == [
        {
            "model": "tiny",
            "displayName": "tiny",
            "baseUrl": machine.server.url + "/v1",
            "apiKey": "ollama",
            "provider": "generic-chat-completion-api",
            "maxOutputTokens": 64000,
            "supportsImages": False,
            "id": "custom:tiny-0",
            "index": 0,
        },
        mine,
    ]
    assert written["sessionDefaultSettings"] == {
        "autonomy": "high",
        "reasoningEffort": "low",
        "model": "custom:tiny-0",
    }
    (backup,) = (machine.home / ".ollama/backup/droid").iterdir()  # the file it replaced
    assert backup.name.startswith("settings.json.")
    assert json.loads(backup.read_text())["theme"] == "dark"

    # Launched again with another model, the one saved before is still listed, after it.
    assert machine.launch("droid", "--model", "tiny-two").returncode == 0
    again = machine.file(".factory/settings.json")
    assert [m["model"] for m in again["customModels"]] == ["tiny-two", "tiny", "gpt-5"]
    assert machine.saved()["droid"] == {"models": ["tiny-two", "tiny"]}


def test_a_settings_file_that_does_not_parse_is_left_alone(machine):
    machine.tool("droid")
    settings = machine.home / ".factory/settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"theme": "dark",')
    done = machine.launch("droid", "--model", "tiny")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: failed to parse config: ")
    assert settings.read_text() == '{"theme": "dark",'
    assert not machine.record.exists()


def test_a_settings_file_that_is_a_link_stays_one(machine):
    """A dotfile kept elsewhere and linked in: the file it points to is rewritten, the link
    stays, and the backup holds what the link pointed to."""
    machine.tool("droid")
    kept = machine.home / "dotfiles/droid.json"
    kept.parent.mkdir(parents=True)
    kept.write_text('{"theme": "dark"}')
    settings = machine.home / ".factory/settings.json"
    settings.parent.mkdir(parents=True)
    settings.symlink_to(kept)
    done = machine.launch("droid", "--model", "tiny")
    assert done.returncode == 0, done.stderr
    assert settings.is_symlink() and settings.resolve() == kept.resolve()
    written = json.loads(kept.read_text())
    assert written["theme"] == "dark" and written["customModels"][0]["model"] == "tiny"
    (backup,) = (machine.home / ".ollama/backup/droid").iterdir()
    assert backup.name.startswith("settings.json.") and backup.read_text() == '{"theme": "dark"}'


@pytest.mark.parametrize("kind", ["folder", "fifo", "nested"])
def test_a_settings_file_that_cannot_be_read_is_one_line(machine, kind):
    machine.tool("droid")
    settings = machine.home / ".factory/settings.json"
    settings.parent.mkdir(parents=True)
    if kind == "folder":
        settings.mkdir()
    elif kind == "fifo":  # read without waiting for a writer that never comes
        os.mkfifo(settings)
    else:
        settings.write_text("[" * 100_000 + "]" * 100_000)
    done = machine.launch("droid", "--model", "tiny")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"Error: {settings} is not a regular file") or (
        done.stderr.startswith("Error: failed to parse config: nested too deeply")
    )
    assert not machine.record.exists()


def test_opencode_gets_its_config_in_the_environment(machine):
    machine.tool("opencode")
    state = machine.home / ".local/state/opencode/model.json"
    state.parent.mkdir(parents=True)
    theirs = {"providerID": "anthropic", "modelID": "claude"}
    state.write_text(json.dumps({"recent": [theirs], "favorite": [theirs]}))
    done = machine.launch("opencode", "--model", "tiny")
    assert done.returncode == 0, done.stderr
    assert machine.started()["argv"][1:] == []
    config = json.loads(machine.started()["env"]["OPENCODE_CONFIG_CONTENT"])
    assert config == {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "ollama": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Ollama",
                "options": {"baseURL": machine.server.url + "/v1"},
                "models": {"tiny": {"name": "tiny"}},
            }
        },
        "model": "ollama/tiny",
    }
    assert machine.file(".local/state/opencode/model.json") == {
        "recent": [{"providerID": "ollama", "modelID": "tiny"}, theirs],
        "favorite": [theirs],
        "variant": {},
    }


def test_pi_models_and_settings(machine):
    machine.tool("pi")
    models = machine.home / ".pi/agent/models.json"
    models.parent.mkdir(parents=True)
    mine = {"id": "my-own", "input": ["text"]}
    models.write_text(json.dumps({
        "providers": {
            "ollama": {"baseUrl": "http://elsewhere:11434/v1", "api": "openai-completions",
                       "apiKey": "ollama", "models": [mine, {"id": "gone", "_launch": True}]},
            "openai": {"apiKey": "sk-mine"},
        }
    }))  # fmt: skip
    done = machine.launch("pi", "--model", "tiny", "--", "--print", "hi")
    assert done.returncode == 0, done.stderr
    assert machine.started()["argv"][1:] == ["--print", "hi"]
    written = machine.file(".pi/agent/models.json")
    assert written["providers"]["openai"] == {"apiKey": "sk-mine"}
    ollama = written["providers"]["ollama"]
    assert ollama["baseUrl"] == "http://elsewhere:11434/v1"  # a provider already there is kept
    assert ollama["models"] == [
        mine,
        {"id": "tiny", "_launch": True, "input": ["text"], "contextWindow": 256},
    ]
    assert machine.file(".pi/agent/settings.json") == {
        "defaultProvider": "ollama",
        "defaultModel": "tiny",
    }


def test_cline_provider_settings(machine):
    machine.tool("cline")
    done = machine.launch("cline", "--model", "tiny")
    assert done.returncode == 0, done.stderr
    url = machine.server.url
    providers = machine.file(".cline/data/settings/providers.json")
    ollama = providers["providers"]["ollama"]
    assert providers["version"] == 1 and providers["lastUsedProvider"] == "ollama"
    assert ollama["settings"] == {"provider": "ollama", "model": "tiny", "baseUrl": url + "/v1"}
    assert ollama["tokenSource"] == "manual" and ollama["updatedAt"].endswith("Z")
    state = machine.file(".cline/data/globalState.json")
    assert state["actModeOllamaModelId"] == state["planModeOllamaModelId"] == "tiny"
    assert state["ollamaBaseUrl"] == state["actModeOllamaBaseUrl"] == url
    assert state["welcomeViewCompleted"] is True


def test_a_tool_that_is_not_installed(machine):
    done = machine.launch("codex", "--model", "tiny")
    assert done.returncode == 1
    assert done.stderr == (
        "Error: codex is not installed, install from https://developers.openai.com/codex/cli/\n"
    )
    done = machine.launch("droid", "--model", "tiny")
    assert done.stderr == (
        "Error: droid is not installed, install from "
        "https://docs.factory.ai/cli/getting-started/quickstart\n"
    )
    # One with an installer needs what the installer runs, then asks first; with no terminal
    # to ask in, it says how to say yes.
    done = machine.launch("cline", "--model", "tiny")
    assert done.stderr == (
        "Error: cline is not installed and required dependencies are missing\n\n"
        "Install the following first:\n  npm (Node.js): https://nodejs.org/\n\n"
        "Then re-run:\n  ollamakit launch cline\n"
    )
    machine.tool("npm")
    done = machine.launch("cline", "--model", "tiny")
    assert done.stderr == (
        "Error: Cline is not installed. Install with npm? requires confirmation; "
        "re-run with --yes to continue\n"
    )
    assert not (machine.home / ".ollama").exists()  # nothing was configured


def test_yes_runs_the_installer_then_the_tool(machine, tmp_path):
    """Claude Code's installer is ``curl ... | bash``: here a fake curl whose script installs a
    fake claude where the real installer puts it, in ``~/.local/bin``, off PATH."""
    os.symlink("/bin/bash", machine.bin / "bash")
    tool = machine.tool("claude-build", tmp_path / "dist")
    script = f'/bin/mkdir -p "$HOME/.local/bin" && /bin/cp {tool} "$HOME/.local/bin/claude"'
    (machine.bin / "curl").write_text(f"#!/bin/bash\necho '{script}'\n")
    (machine.bin / "curl").chmod(0o755)
    done = machine.launch("claude", "--model", "tiny", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Installing Claude Code..." in done.stderr
    assert "Claude Code installed successfully" in done.stderr
    started = machine.started()
    assert started["argv"][0] == str(machine.home / ".local/bin/claude")
    assert started["argv"][1:] == ["--model", "tiny"]


def test_model_choices_without_a_terminal(machine):
    machine.tool("claude")
    missing = machine.launch("claude", "--model", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr == (
        "Error: model \"nosuch\" not found; run 'ollamakit pull nosuch' first, "
        "or use --yes to auto-pull\n"
    )
    headless = machine.launch("claude", "--yes")
    assert headless.stderr == "Error: headless --yes launch for claude requires --model <model>\n"
    unnamed = machine.launch("claude")
    assert unnamed.returncode == 1 and "use --model" in unnamed.stderr
    assert not machine.record.exists()


def test_the_tools_failure_is_the_commands(machine):
    machine.tool("claude")
    done = machine.launch("claude", "--model", "tiny", FAKE_EXIT="3")
    assert done.returncode == 1
    assert done.stderr == "Error: exit status 3\n"


def test_usage_errors(machine):
    assert "unknown integration: nope" in machine.launch("nope").stderr
    assert "Use '--' to pass extra arguments" in machine.launch("claude", "x").stderr
    assert "require an integration name" in machine.launch("--model", "tiny").stderr
    assert "cannot be combined" in machine.launch("codex", "--restore", "--model", "tiny").stderr
    assert "claude does not support --restore" in machine.launch("claude", "--restore").stderr
    bare = machine.launch()  # no tool: bare ollamakit, which outside a terminal is the help
    assert bare.returncode == 0 and bare.stdout.startswith("Usage: ")


@pytest.mark.slow
def test_on_a_terminal_that_cannot_draw_the_model_is_picked_by_number(machine):
    machine.tool("droid")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "launch", "droid"],
        env=machine.env(TERM="dumb"),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    # Ollama's order with its cloud off: the recommended local models first (not downloaded
    # here, so with their size), then the downloaded ones; no cloud model.
    child.expect_exact("Select model for Droid:")
    child.expect_exact("1. gemma4  Reasoning and code generation locally, ~12GB, (not downloaded)")
    child.expect_exact("2. qwen3.5  Reasoning, coding, and visual understanding locally, ~14GB")
    child.expect_exact("3. tiny\r\n")
    child.expect_exact("4. tiny-two")
    child.expect_exact("Model (number or name)")
    assert "cloud" not in child.before
    child.sendline("4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert machine.saved()["droid"] == {"models": ["tiny-two"]}

    # A name the server does not have is offered for download; no leaves quietly.
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "launch", "droid", "--model", "nosuch"],
        env=machine.env(),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("Download nosuch?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert machine.saved()["droid"] == {"models": ["tiny-two"]}


def visible(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@pytest.mark.slow
def test_in_a_terminal_the_model_is_picked_with_the_arrow_keys(machine):
    """Ollama's selector: the list in its order, the cursor moved with the arrow keys, typing
    filters it, Enter picks, Esc goes back."""
    machine.tool("droid")

    def picker(*args: str) -> pexpect.spawn:
        child = pexpect.spawn(
            sys.executable, ["-m", "ollamakit", "launch", "droid", *args],
            env=machine.env(), encoding="utf-8", timeout=60, dimensions=(40, 120),
        )  # fmt: skip
        child.expect_exact("Select model for Droid:")
        child.expect_exact("esc cancel")
        return child

    child = picker()
    shown = visible(child.before)
    assert re.findall(r"^(?:▸ |  )(\S+)\r$", shown, re.M) == [
        "gemma4",
        "qwen3.5",
        "tiny",
        "tiny-two",
    ]
    assert "▸ gemma4" in shown and "Type to filter..." in shown
    assert "Reasoning and code generation locally, ~12GB, (not downloaded)" in shown
    child.send("\x1b[B\x1b[B\x1b[B")  # down three: tiny-two
    child.expect_exact("▸ tiny-two")
    child.send("\x1b[A")  # and up one: tiny
    child.expect_exact("▸ tiny")
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert machine.saved()["droid"] == {"models": ["tiny"]}
    assert machine.started()["argv"][1:] == []

    child = picker()  # the current model is where the cursor starts
    assert "▸ tiny\r" in visible(child.before)
    child.send("two")  # filtered: only what holds it
    child.expect_exact("▸ tiny-two")
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert machine.saved()["droid"]["models"][0] == "tiny-two"

    machine.record.unlink()
    child = picker()
    child.send("\x1b")  # Esc: back, nothing launched, no error
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not machine.record.exists()


def test_each_tool_gets_the_url_ollama_gives_it_for_a_listen_everywhere_host(machine):
    """``OLLAMA_HOST=0.0.0.0:PORT``: Ollama hands Claude Code the host as it is
    (``envconfig.Host()``), and Cline loopback (``ConnectableHost()``)."""
    port = machine.server.url.rsplit(":", 1)[1]
    machine.tool("claude")
    done = machine.launch("claude", "--model", "tiny", OLLAMA_HOST=f"0.0.0.0:{port}")
    assert done.returncode == 0, done.stderr
    assert machine.started()["env"]["ANTHROPIC_BASE_URL"] == f"http://0.0.0.0:{port}"
    machine.tool("cline")
    done = machine.launch("cline", "--model", "tiny", OLLAMA_HOST=f"0.0.0.0:{port}")
    assert done.returncode == 0, done.stderr
    settings = machine.file(".cline/data/settings/providers.json")["providers"]["ollama"]
    assert settings["settings"]["baseUrl"] == f"http://127.0.0.1:{port}/v1"
    assert machine.file(".cline/data/globalState.json")["ollamaBaseUrl"] == (
        f"http://127.0.0.1:{port}"
    )


def test_qwen_settings_and_arguments(machine):
    machine.tool("qwen")
    settings = machine.home / ".qwen/settings.json"
    settings.parent.mkdir(parents=True)
    theirs = {"id": "gpt-5", "baseUrl": "https://api.openai.com/v1", "envKey": "OPENAI_API_KEY"}
    old = {"id": "old", "baseUrl": machine.server.url + "/v1/", "envKey": "OLLAMA_API_KEY"}
    settings.write_text(json.dumps({
        "theme": "dark",
        "env": {"MINE": "1"},
        "modelProviders": {"openai": [old, theirs], "anthropic": []},
        "security": {"auth": {"selectedType": "qwen-oauth", "apiKey": "k"}},
    }))  # fmt: skip
    done = machine.launch("qwen", "--model", "tiny", "--", "-p", "hi")
    assert done.returncode == 0, done.stderr
    url = machine.server.url
    started = machine.started()
    assert started["argv"][1:] == ["--model", "tiny", "--auth-type", "openai", "-p", "hi"]
    assert started["env"]["OPENAI_API_KEY"] == "ollama"
    assert started["env"]["OPENAI_BASE_URL"] == url + "/v1"
    assert started["env"]["OPENAI_MODEL"] == "tiny"
    assert machine.file(".qwen/settings.json") == {
        "theme": "dark",
        "env": {"MINE": "1", "OLLAMA_API_KEY": "ollama"},
        "modelProviders": {
            "openai": [
                {"id": "tiny", "name": "tiny (Ollama)", "baseUrl": url + "/v1",
                 "envKey": "OLLAMA_API_KEY"},
                theirs,
            ],
            "anthropic": [],
        },
        "security": {"auth": {"selectedType": "openai", "apiKey": "k", "baseUrl": url + "/v1"}},
        "model": {"name": "tiny"},
    }  # fmt: skip
    assert machine.saved()["qwen"] == {"models": ["tiny"], "onboarded": True}
    # The user's own --model and --auth-type win.
    assert (
        machine.launch("qwen", "--model", "tiny", "--", "-m", "x", "--auth-type=y").returncode == 0
    )
    assert machine.started()["argv"][1:] == ["-m", "x", "--auth-type=y"]


def test_kimi_gets_its_config_inline(machine):
    machine.tool("kimi")
    port = machine.server.url.rsplit(":", 1)[1]
    done = machine.launch("kimi", "--model", "tiny", OLLAMA_HOST=f"0.0.0.0:{port}")
    assert done.returncode == 0, done.stderr
    argv = machine.started()["argv"][1:]
    assert argv[0] == "--config" and len(argv) == 2
    assert argv[1] == json.dumps(json.loads(argv[1]), sort_keys=True, separators=(",", ":"))
    assert json.loads(argv[1]) == {
        "default_model": "ollama",
        "providers": {
            "ollama": {
                "type": "openai_legacy",
                "base_url": f"http://127.0.0.1:{port}/v1",
                "api_key": "ollama",
            }
        },
        "models": {"ollama": {"provider": "ollama", "model": "tiny", "max_context_size": 256}},
    }
    clash = machine.launch("kimi", "--model", "tiny", "--", "--config-file=x")
    assert clash.returncode == 1
    assert "'--config-file=x': ollamakit launch kimi manages --config-file" in clash.stderr


def test_omp_models_yaml_lists_every_model_offered(machine, tmp_path):
    machine.tool("omp")
    agent = tmp_path / "omp-config" / "agent"  # PI_CONFIG_DIR moves it
    agent.mkdir(parents=True)
    (agent / "models.yml").write_text(
        "providers:\n"
        "  ollama:\n"
        "    models:\n"
        "      - {id: tiny, name: tiny, maxTokens: 999}\n"
        "      - {id: mine, name: Mine}\n"
        "  openai:\n"
        "    apiKey: sk-mine\n"
    )
    (agent / "config.yml").write_text("theme: dark\n")
    done = machine.launch(
        "omp", "--model", "tiny", "--", "--resume", PI_CONFIG_DIR=str(tmp_path / "omp-config")
    )
    assert done.returncode == 0, done.stderr
    assert "Cloud is disabled; skipping @ollama/pi-web-search setup." in done.stderr
    assert machine.started()["argv"][1:] == ["--model", "ollama/tiny", "--resume"]
    models = yaml.safe_load((agent / "models.yml").read_text())
    assert models["providers"]["openai"] == {"apiKey": "sk-mine"}
    ollama = models["providers"]["ollama"]
    assert {k: v for k, v in ollama.items() if k != "models"} == {
        "baseUrl": machine.server.url + "/v1",
        "api": "openai-responses",
        "auth": "none",
        "discovery": {"type": "ollama"},
    }
    # the chosen model first (the key the user added kept), then what the picker offers: the
    # recommended models not downloaded (the cloud ones left out), the other local model, then
    # the user's own entry
    assert ollama["models"] == [
        {"id": "tiny", "name": "tiny", "input": ["text"], "contextWindow": 256, "maxTokens": 999},
        {"id": "gemma4", "name": "gemma4", "input": ["text"]},
        {"id": "qwen3.5", "name": "qwen3.5", "input": ["text"]},
        {"id": "tiny-two", "name": "tiny-two", "input": ["text"], "contextWindow": 256},
        {"id": "mine", "name": "Mine"},
    ]
    assert yaml.safe_load((agent / "config.yml").read_text()) == {
        "theme": "dark",
        "setupVersion": 1,
    }
    assert machine.saved()["omp"] == {"models": ["tiny"], "onboarded": True}
    assert len(list((machine.home / ".ollama/backup/omp").iterdir())) == 2


def test_desktop_apps_ollama_sets_up_only_on_macos_or_windows(machine):
    """On Linux, Ollama's words: Claude Desktop is only ever restored from its command line,
    and neither app is there to restore or launch."""
    done = machine.launch("claude-desktop", "--model", "tiny")
    assert done.returncode == 1
    assert done.stderr == (
        "Error: Claude Desktop can only be restored from the command line: "
        "ollamakit launch claude-desktop --restore\n"
    )
    done = machine.launch("claude-app", "--restore")
    assert done.stderr == "Error: Claude Desktop launch is only supported on macOS\n"
    for args in (("codex-app",), ("chatgpt", "--restore")):
        done = machine.launch(*args)
        assert done.stderr == "Error: ChatGPT launch is only supported on macOS and Windows\n"
    assert not (machine.home / ".ollama").exists()


def test_a_cloud_model_is_ignored(machine):
    machine.tool("claude")
    done = machine.launch("claude", "--model", "glm-5.1:cloud", "--yes")
    assert done.returncode == 1
    assert done.stderr == (
        "Warning: ignoring --model glm-5.1:cloud because cloud is disabled\n"
        "Error: headless --yes launch for claude requires --model <model>\n"
    )


FAKE_HERMES = f"""#!{sys.executable}
import json, os, sys
log = os.environ["FAKE_RECORD"] + ".calls"
with open(log, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("FAKE_VERSION", "Hermes Agent v0.18.2 (2026.6.1)"))
elif sys.argv[1:] == ["gateway", "status"]:
    print(os.environ.get("FAKE_GATEWAY", "Gateway is not running"))
elif sys.argv[1:2] not in (["gateway"], ["update"]):
    with open(os.environ["FAKE_RECORD"], "w") as fh:
        json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, fh)
"""


def hermes_calls(machine) -> list[list[str]]:
    log = Path(str(machine.record) + ".calls")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_hermes_config_and_its_gateway(machine):
    (machine.bin / "hermes").write_text(FAKE_HERMES)
    (machine.bin / "hermes").chmod(0o755)
    config = machine.home / ".hermes/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "model:\n  default: gpt-5\n  provider: openai\n  temperature: 0.3\n"
        "providers:\n  ollama: {api: 'http://old:11434/v1', extra: kept}\n"
        "  openai: {api_key: sk-mine}\n"
        "custom_providers:\n  - {name: Ollama, base_url: 'http://old:11434/v1'}\n"
        "  - {name: Mine, base_url: 'https://example.com/v1'}\n"
        "toolsets: hermes-cli, files\n"
    )
    port = machine.server.url.rsplit(":", 1)[1]
    done = machine.launch(
        "hermes", "--model", "tiny", "--", "chat", OLLAMA_HOST=f"0.0.0.0:{port}",
        FAKE_GATEWAY="✓ Gateway is running (pid 42)",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = f"http://127.0.0.1:{port}/v1"
    assert yaml.safe_load(config.read_text()) == {
        "model": {"default": "tiny", "provider": "ollama-launch", "temperature": 0.3,
                  "base_url": url, "api_key": "ollama"},
        "providers": {
            "ollama-launch": {"api": url, "extra": "kept", "name": "Ollama",
                              "default_model": "tiny",
                              "models": ["tiny", "tiny-two:latest", "tiny:latest"]},
            "openai": {"api_key": "sk-mine"},
        },
        "custom_providers": [{"name": "Mine", "base_url": "https://example.com/v1"}],
        "toolsets": ["hermes-cli", "files", "web"],
    }  # fmt: skip
    # the running gateway was restarted to read it; extra arguments: no messaging question
    assert hermes_calls(machine) == [["gateway", "status"], ["gateway", "restart"], ["chat"]]
    assert "Refreshing Hermes messaging gateway..." in done.stderr
    assert machine.started()["argv"][1:] == ["chat"]
    assert machine.saved()["hermes"] == {"models": ["tiny"], "onboarded": True}


@pytest.mark.slow
def test_hermes_offers_messaging_setup_in_a_terminal(machine):
    (machine.bin / "hermes").write_text(FAKE_HERMES)
    (machine.bin / "hermes").chmod(0o755)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "launch", "hermes", "--model", "tiny"],
        env=machine.env(),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("Hermes can message you on Telegram, Discord, Slack, and more.")
    child.expect_exact("Connect a messaging app now?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert hermes_calls(machine) == [["gateway", "status"], ["gateway", "setup"], []]
    # A token in Hermes's .env means a messaging app is connected: nothing is asked.
    (machine.home / ".hermes/.env").write_text('export TELEGRAM_BOT_TOKEN="123:abc"\n')
    done = machine.launch("hermes", "--model", "tiny")  # no terminal either way
    assert done.returncode == 0, done.stderr
    assert "Connect a messaging app" not in done.stderr


def test_hermes_desktop_updates_an_old_hermes_and_skips_the_build(machine):
    (machine.bin / "hermes").write_text(FAKE_HERMES)
    (machine.bin / "hermes").chmod(0o755)
    packaged = machine.home / ".hermes/hermes-agent/apps/desktop/release/linux-unpacked/hermes"
    packaged.parent.mkdir(parents=True)
    packaged.write_text("")
    done = machine.launch("hermes-desktop", "--model", "tiny", FAKE_VERSION="hermes v0.15.1")
    assert done.returncode == 0, done.stderr
    assert "Hermes v0.15.1 is older than the minimum version (v0.16.0)" in done.stderr
    assert hermes_calls(machine) == [
        ["gateway", "status"], ["--version"], ["update"], ["desktop", "--skip-build"],
    ]  # fmt: skip
    assert machine.saved()["hermes-desktop"] == {"models": ["tiny"], "onboarded": True}
    assert (
        yaml.safe_load((machine.home / ".hermes/config.yaml").read_text())["model"]["default"]
        == "tiny"
    )
    done = machine.launch("hermes-desktop", "--model", "tiny", "--", "--force-build")
    assert machine.started()["argv"][1:] == ["desktop", "--force-build"]


@pytest.mark.slow
def test_the_bare_menu_launches_a_tool_with_its_saved_model(machine):
    machine.tool("droid")
    assert machine.launch("droid", "--model", "tiny-two").returncode == 0
    machine.record.unlink()
    child = pexpect.spawn(
        sys.executable, ["-m", "ollamakit"], env=machine.env(), encoding="utf-8", timeout=60
    )
    child.expect_exact("Choice (number")
    child.sendline("6")  # More...
    child.expect_exact("Choice (number")
    number = re.search(r"^ +(\d+)\. Launch Droid \(tiny-two\)\r$", child.before, re.M)[1]
    child.sendline(number)  # as Enter in Ollama's menu: the saved model, no picker
    child.expect_exact("Choice (number")  # back in the menu after the tool
    assert machine.started()["argv"][1:] == []
    assert "Select model" not in child.before
    child.sendline(number + ">")  # as its right arrow: the picker first
    child.expect_exact("Select model for Droid:")
    child.sendline("tiny")
    child.expect_exact("Choice (number")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert machine.saved()["droid"]["models"] == ["tiny", "tiny-two"]
    assert machine.file(".ollama/config.json")["last_selection"] == "droid"


def test_muse_settings_in_launchs_own_config_folder(machine, tmp_path):
    """Muse reads launch's own copy of its settings (``XDG_CONFIG_HOME``), made from the user's;
    its first model's context is the one the server loads it with (``/api/ps``), here the
    model's ``num_ctx`` 128 rather than the 256 it was trained on."""
    gguf = tiny_llama(  # a file of its own, so that it loads apart from the other tiny models
        tmp_path / "short.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=96
    )
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    url = machine.server.url
    httpx.post(f"{url}/api/blobs/{digest}", content=gguf.read_bytes()).raise_for_status()
    created = httpx.post(
        url + "/api/create",
        json={"model": "tiny-short", "files": {gguf.name: digest},
              "parameters": {"num_ctx": 128}, "stream": False},
        timeout=60,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    machine.tool("muse")
    mine = machine.home / ".config/muse/settings.json"
    mine.parent.mkdir(parents=True)
    mine.write_text(json.dumps({"theme": "dark", "provider": "other"}))
    assert machine.launch("muse", "--model", "tiny-two").returncode == 0
    done = machine.launch("muse", "--model", "tiny-short", "--", "--resume")
    assert done.returncode == 0, done.stderr
    started = machine.started()
    folder = machine.home / ".ollama/launch/muse-config"
    assert started["argv"][1:] == ["--resume"]
    assert started["env"]["XDG_CONFIG_HOME"] == str(folder)
    settings = json.loads((folder / "muse/settings.json").read_text())
    row = {"provider_id": "meta", "profile_id": "tbh", "visibility": "visible",
           "description": "Served by Ollama"}  # fmt: skip
    assert settings == {
        "theme": "dark",  # the user's own settings, the base of launch's copy
        "provider": "meta",
        "schema_version": 1,
        "model": "tiny-short",
        "endpoint_transport": {"base_url": machine.server.url + "/v1", "auth": "none"},
        "model_catalog": [
            {**row, "model_id": "tiny-short", "display_label": "tiny-short", "display_order": 0,
             "is_default": True, "context_limit": 128, "output_limit": 128},
            {**row, "model_id": "tiny-two", "display_label": "tiny-two", "display_order": 1,
             "is_default": False, "context_limit": 256, "output_limit": 256},
        ],
    }  # fmt: skip
    assert json.loads(mine.read_text()) == {"theme": "dark", "provider": "other"}  # untouched


def test_dsh_settings_and_patch_in_launchs_own_folder(machine):
    machine.tool("dsh")
    folder = machine.home / ".ollama/launch/dsh"
    folder.mkdir(parents=True)
    (folder / "settings.yaml").write_text(
        "theme: dark\nllm-pi-ai:\n  providers:\n    openai: {apiKeyEnv: OPENAI_API_KEY}\n"
    )
    port = machine.server.url.rsplit(":", 1)[1]
    done = machine.launch(
        "dsh", "--model", "tiny", "--", "--port", "9", OLLAMA_HOST=f"0.0.0.0:{port}"
    )
    assert done.returncode == 0, done.stderr
    started = machine.started()
    assert started["argv"][1:] == [
        "web",
        "--patch",
        str(folder / "ollama.cordis.yml"),
        "--port",
        "9",
    ]
    assert started["env"]["OLLAMA_LAUNCH_DSH_API_KEY"] == "ollama"
    text = (folder / "settings.yaml").read_text()
    assert text.startswith("theme: dark\nllm-pi-ai:\n")  # the file's own order kept
    settings = yaml.safe_load(text)
    assert settings["agent-default-model"] == {"provider": "ollama", "model": "tiny"}
    providers = settings["llm-pi-ai"]["providers"]
    assert providers["openai"] == {"apiKeyEnv": "OPENAI_API_KEY"}
    ollama = providers["ollama"]
    assert ollama["baseURL"] == f"http://127.0.0.1:{port}/v1"
    assert (
        ollama["api"] == "openai-completions" and ollama["apiKeyEnv"] == "OLLAMA_LAUNCH_DSH_API_KEY"
    )
    assert [m["id"] for m in ollama["models"]][:3] == ["tiny", "gemma4", "qwen3.5"]
    assert yaml.safe_load((folder / "ollama.cordis.yml").read_text()) == [
        {"id": "settings", "config": {"path": str(folder / "settings.yaml")}}
    ]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "settings.yaml").stat().st_mode & 0o777 == 0o600
    assert machine.saved()["dsh"] == {"models": ["tiny"], "onboarded": True}
    clash = machine.launch("dsh", "--model", "tiny", "--", "--patch=x")
    assert "ollamakit launch dsh manages --patch" in clash.stderr


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("model: [unclosed\n", "Error: failed to parse config: "),
        ("- a list\n", "Error: failed to parse config: not a YAML mapping, at: "),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "Error: failed to parse config: "),
    ],
)
def test_a_yaml_config_that_does_not_parse_is_left_alone(machine, text, error):
    (machine.bin / "hermes").write_text(FAKE_HERMES)
    (machine.bin / "hermes").chmod(0o755)
    config = machine.home / ".hermes/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    done = machine.launch("hermes", "--model", "tiny")
    assert done.returncode == 1
    assert done.stderr.startswith(error) and "Traceback" not in done.stderr
    assert config.read_text() == text
    assert not machine.record.exists()


def test_config_only_configures_ollamas_managed_tools_without_asking(machine):
    """``--config`` for Qwen Code (one of the tools Ollama manages and marks onboarded) writes its
    settings and stops; for another tool it asks whether to start it, which needs a terminal."""
    machine.tool("qwen")
    done = machine.launch("qwen", "--model", "tiny", "--config")
    assert done.returncode == 0, done.stderr
    assert machine.file(".qwen/settings.json")["model"] == {"name": "tiny"}
    assert not machine.record.exists()
    machine.tool("droid")
    asked = machine.launch("droid", "--model", "tiny", "--config")
    assert asked.returncode == 1
    assert "Launch Droid now? requires confirmation" in asked.stderr
    assert not machine.record.exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_hermes_env_that_is_not_a_file_is_read_as_empty(tmp_path, kind):
    """Whether a messaging app is connected is read from Hermes's .env: a FIFO there is not
    waited on for a writer (the launch hung before its question), a folder is no error."""
    import threading

    from ollamakit_cli.hermes import env_file_values

    env = tmp_path / ".env"
    os.mkfifo(env) if kind == "fifo" else env.mkdir()
    found: list = []
    reader = threading.Thread(target=lambda: found.append(env_file_values(env)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # let the blocked reader see an end of file, then fail
        os.close(os.open(env, os.O_WRONLY | os.O_NONBLOCK))
    assert found == [{}]


def test_a_second_write_in_the_same_second_keeps_the_users_backup(tmp_path, monkeypatch):
    """The launcher can write ~/.ollama/config.json twice within a second (the menu's choice,
    then the models): the backup of that second stays the user's file, with its permissions,
    not the launcher's first write."""
    from ollamakit_cli import configfiles

    monkeypatch.setattr(configfiles.time, "time", lambda: 1_800_000_000.5)
    path = tmp_path / ".ollama/config.json"
    path.parent.mkdir()
    path.write_text('{"mine": true}')
    path.chmod(0o600)
    configfiles.save_last_choice(tmp_path, "last_selection", "run")
    configfiles.save_models(tmp_path, "claude", ["tiny"])
    (backup,) = (tmp_path / ".ollama/backup").iterdir()
    assert backup.name == "config.json.1800000000"
    assert backup.read_text() == '{"mine": true}' and backup.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["integrations"]["claude"] == {"models": ["tiny"]}


# -- OpenClaw: onboarding the first time, and a gateway that answers while its TUI runs -----

FAKE_OPENCLAW = f"""#!{sys.executable}
import json, os, socket, sys
args = sys.argv[1:]
record = os.environ["FAKE_RECORD"]
with open(record + ".calls", "a") as fh:
    fh.write(json.dumps(args) + "\\n")
path = os.path.join(os.environ["HOME"], ".openclaw", "openclaw.json")
def config():
    try:
        with open(path) as fh:
            return json.load(fh)
    except OSError:
        return {{}}
def save(value):
    with open(path, "w") as fh:
        json.dump(value, fh)
port = config().get("gateway", {{}}).get("port", 18789)
if args[:1] == ["onboard"]:  # as OpenClaw's wizard: it marks itself run
    value = config()
    value["wizard"] = {{"lastRunAt": "2026-12-08T00:00:00.000Z"}}
    save(value)
elif args[:2] == ["channels", "add"]:
    value = config()
    value["channels"] = {{"telegram": {{"enabled": True, "botToken": "123:abc"}}}}
    save(value)
elif args[:2] == ["gateway", "run"]:
    with open(record + ".gateway", "w") as fh:
        fh.write(str(os.getpid()))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    while True:
        server.accept()[0].close()
elif args[:1] not in (["update"], ["daemon"]):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        up = True
    except OSError:
        up = False
    with open(record, "w") as fh:
        json.dump({{"argv": sys.argv, "env": dict(os.environ), "gateway": up}}, fh)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def openclaw_machine(machine, config: dict) -> int:
    """OpenClaw on PATH, its config with a gateway port of the test's own; the port."""
    (machine.bin / "openclaw").write_text(FAKE_OPENCLAW)
    (machine.bin / "openclaw").chmod(0o755)
    port = free_port()
    config.setdefault("gateway", {})["port"] = port
    path = machine.home / ".openclaw/openclaw.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return port


def port_answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_openclaw_first_launch_onboards_then_runs_a_gateway_for_its_tui(machine):
    port = openclaw_machine(machine, {})
    # the config of an older release, read while the new one is absent
    (machine.home / ".openclaw/openclaw.json").unlink()
    legacy = machine.home / ".clawdbot/clawdbot.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({
        "gateway": {"port": port, "auth": {"token": "t o/k"}},
        "models": {"providers": {
            "ollama": {"models": [{"id": "tiny", "name": "old", "alias": "mine"},
                                  {"id": "gone"}]},
            "other": {"baseUrl": "https://example.com"},
        }},
        "agents": {"defaults": {"model": {"primary": "other/x", "fallbacks": ["other/y"]},
                                "workspace": "~/w"}},
        "theme": "dark",
    }))  # fmt: skip
    sessions = machine.home / ".openclaw/agents/main/sessions/sessions.json"
    sessions.parent.mkdir(parents=True)
    sessions.write_text(json.dumps({
        "main": {"model": "gone", "modelOverride": "gone", "providerOverride": "ollama"},
        "kept": {"model": "tiny", "label": "x"},
    }))  # fmt: skip
    (machine.home / ".openclaw/identity").mkdir()
    (machine.home / ".openclaw/identity/device-auth.json").write_text('{"deviceId": "this"}')
    (machine.home / ".openclaw/devices").mkdir()
    (machine.home / ".openclaw/devices/paired.json").write_text(json.dumps({
        "this": {"scopes": ["operator.read"], "tokens": {
            "operator": {"scopes": []}, "node": {"role": "node", "scopes": []}}},
        "other": {"scopes": []},
    }))  # fmt: skip
    keys = {"ANTHROPIC_API_KEY": "sk-a", "OPENAI_API_KEY": "sk-o", "XDG_RUNTIME_DIR": ""}

    # Outside a terminal, the security notice needs --yes; the config is written before it.
    done = machine.launch("openclaw", "--model", "tiny", **keys)
    assert done.returncode == 1
    assert "OpenClaw can read files and run actions when tools are enabled." in done.stderr
    assert done.stderr.endswith(
        "Error: I understand the risks. Continue? requires confirmation; "
        "re-run with --yes to continue\n"
    )
    assert hermes_calls(machine) == []

    done = machine.launch("openclaw", "--model", "tiny", "--yes", **keys)
    assert done.returncode == 0, done.stderr
    url = machine.server.url
    onboard = ["onboard", "--non-interactive", "--accept-risk", "--auth-choice", "ollama",
               "--custom-base-url", url, "--custom-model-id", "tiny",
               "--skip-health", "--skip-channels", "--skip-skills"]  # fmt: skip
    # no systemd user manager here: no daemon, the gateway runs as launch's child
    assert hermes_calls(machine) == [
        ["update"], onboard, ["gateway", "run", "--force"],
        ["tui", "--message", "Wake up, my friend!"],
    ]  # fmt: skip
    started = machine.started()
    assert started["gateway"] is True  # it answered while the TUI ran
    assert "ANTHROPIC_API_KEY" not in started["env"] and "OPENAI_API_KEY" not in started["env"]
    stage = str(machine.home / ".openclaw/plugin-runtime-deps")
    assert started["env"]["OPENCLAW_PLUGIN_STAGE_DIR"] == stage
    # ... and was stopped after it
    gateway = int(Path(str(machine.record) + ".gateway").read_text())
    assert not port_answers(port)
    with pytest.raises(ProcessLookupError):
        os.kill(gateway, 0)
    assert "✓ OpenClaw is running" in done.stderr
    assert f"http://127.0.0.1:{port}/#token=t+o%2Fk" in done.stderr
    assert "Stop it with: openclaw gateway stop" in done.stderr

    config = machine.file(".openclaw/openclaw.json")
    ollama = config["models"]["providers"]["ollama"]
    assert {k: v for k, v in ollama.items() if k != "models"} == {
        "baseUrl": url, "apiKey": "ollama-local", "api": "ollama",
    }  # fmt: skip
    (entry,) = ollama["models"]  # the saved models only; fields the user added stay
    assert entry["id"] == entry["name"] == "tiny" and entry["alias"] == "mine"
    assert entry["input"] == ["text"]
    assert entry["cost"] == {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}
    assert config["models"]["providers"]["other"] == {"baseUrl": "https://example.com"}
    assert config["agents"] == {
        "defaults": {"model": {"primary": "ollama/tiny", "fallbacks": ["other/y"]},
                     "workspace": "~/w"},
    }  # fmt: skip
    assert config["theme"] == "dark" and config["wizard"]["lastRunAt"]
    assert config["plugins"] == {"entries": {"ollama": {"enabled": True}}}
    assert config["tools"] == {"web": {"search": {"provider": "ollama", "enabled": True}}}
    assert json.loads(sessions.read_text()) == {
        "main": {"model": "tiny"}, "kept": {"model": "tiny", "label": "x"},
    }  # fmt: skip
    operator = ["operator.read", "operator.admin", "operator.approvals", "operator.pairing"]
    assert machine.file(".openclaw/devices/paired.json") == {
        "this": {"scopes": operator, "approvedScopes": operator, "tokens": {
            "operator": {"scopes": operator}, "node": {"role": "node", "scopes": []}}},
        "other": {"scopes": []},
    }  # fmt: skip
    assert machine.saved() == {"openclaw": {"models": ["tiny"]}}
    assert legacy.exists()  # the old file is left where it was


def test_openclaw_restarts_a_running_gateway_and_passes_extra_arguments(machine):
    import socket

    port = openclaw_machine(machine, {
        "wizard": {"lastRunAt": "2026-01-01T00:00:00Z"},
        "tools": {"alsoAllow": ["ollama_web_search", "exec"], "web": {"search": {"provider": "x"}}},
        "plugins": {"entries": {"openclaw-web-search": {}}, "allow": ["openclaw-web-search"],
                    "installs": {"openclaw-web-search": {}}},
    })  # fmt: skip
    listener = socket.socket()  # a gateway already running (the daemon's)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    try:
        done = machine.launch("openclaw", "--model", "tiny", "--", "tui", "--deliver")
        assert done.returncode == 0, done.stderr
        # onboarded before: no update, no wizard; a running gateway restarted to read the config
        assert hermes_calls(machine) == [["daemon", "restart"], ["tui", "--deliver"]]
        assert machine.started()["argv"][1:] == ["tui", "--deliver"]
        assert port_answers(port)  # not launch's own, so left running
    finally:
        listener.close()
    config = machine.file(".openclaw/openclaw.json")  # the old web search plugin's traces gone
    assert config["tools"] == {
        "alsoAllow": ["exec"],
        "web": {"search": {"provider": "ollama", "enabled": True}, "fetch": {"enabled": True}},
    }  # fmt: skip
    assert config["plugins"] == {"entries": {"ollama": {"enabled": True}}, "allow": ["ollama"]}

    # other extra arguments: exactly those, with no gateway
    Path(str(machine.record) + ".calls").unlink()
    done = machine.launch("openclaw", "--model", "tiny", "--", "status")
    assert done.returncode == 0, done.stderr
    assert hermes_calls(machine) == [["status"]]
    assert machine.saved()["openclaw"] == {"models": ["tiny"]}


@pytest.mark.slow
def test_openclaw_in_a_terminal_asks_first_and_offers_a_channel(machine):
    openclaw_machine(machine, {})
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "launch", "openclaw", "--model", "tiny"],
        env=machine.env(XDG_RUNTIME_DIR=""),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("I understand the risks. Continue?")
    child.sendline("n")  # no: nothing runs, and it is no error
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and hermes_calls(machine) == []

    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "launch", "clawdbot", "--model", "tiny"],  # an alias
        env=machine.env(XDG_RUNTIME_DIR=""),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("I understand the risks. Continue?")
    child.sendline("y")
    child.expect_exact("Your assistant can message you on WhatsApp, Telegram, Discord, and more.")
    child.expect_exact("Connect a channel (messaging app) now?")
    child.sendline("y")  # the channel is added, so it is not asked again
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    calls = hermes_calls(machine)
    assert [call[0] for call in calls] == ["update", "onboard", "channels", "gateway", "tui"]
    assert calls[-1] == ["tui", "--message", "Wake up, my friend!"]


# -- VS Code (and the desktop apps below): found in their platform's place, not on PATH ------


def launch_with(machine, setup: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """``ollamakit launch ARGS`` with ``setup`` run first in the same process: where an app is
    looked for, or which platform this is, is changed there, as nothing on PATH can fake it."""
    code = (
        f"import sys\n{setup}\nfrom ollamakit.cli import main\n"
        f"sys.argv = ['ollamakit', 'launch', *{list(args)!r}]\nmain()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=machine.env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


FAKE_CODE = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_RECORD"] + ".calls", "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["--version"]:
    print("1.100.2\\n0123abcd\\nx64")
elif sys.argv[1:] == ["--list-extensions", "--show-versions"]:
    print("ms-python.python@2026.1.0\\nGitHub.copilot-chat@0.40.1")
else:
    with open(os.environ["FAKE_RECORD"], "w") as fh:
        json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, fh)
"""

# pgrep finds VS Code while the file FAKE_RUNNING names exists; pkill removes it
FAKE_PGREP = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_RECORD"] + ".calls", "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
running = os.path.exists(os.environ["FAKE_RUNNING"])
if os.path.basename(sys.argv[0]) == "pkill" and running:
    os.unlink(os.environ["FAKE_RUNNING"])
elif running:
    print(4242)
sys.exit(0 if running else 1)
"""


def vscode_machine(machine, tmp_path) -> tuple[str, dict[str, str]]:
    code = tmp_path / "usr/bin/code"
    code.parent.mkdir(parents=True)
    code.write_text(FAKE_CODE)
    code.chmod(0o755)
    for name in ("pgrep", "pkill"):
        (machine.bin / name).write_text(FAKE_PGREP)
        (machine.bin / name).chmod(0o755)
    setup = f"import ollamakit_cli.vscode as v\nv.candidates = lambda: [{str(code)!r}]"
    return setup, {"FAKE_RUNNING": str(tmp_path / "running")}


def wait_for(path: Path) -> None:
    for _ in range(100):
        if path.exists():
            return
        import time

        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def picker(user: Path) -> dict:
    import sqlite3

    with sqlite3.connect(user / "globalStorage/state.vscdb") as db:
        (value,) = db.execute(
            "SELECT value FROM ItemTable WHERE key = 'chatModelPickerPreferences'"
        ).fetchone()
    return json.loads(value)


def test_vscode_copilot_chat_vendor_and_model_picker(machine, tmp_path):
    import sqlite3

    setup, extra = vscode_machine(machine, tmp_path)
    user = machine.home / ".config/Code/User"
    (user / "globalStorage").mkdir(parents=True)
    (user / "chatLanguageModels.json").write_text(json.dumps([
        {"vendor": "ollama", "name": "Ollama", "url": "http://old:11434"},
        {"vendor": "azure", "name": "Mine"},
    ]))  # fmt: skip
    (user / "settings.json").write_text(json.dumps({
        "github.copilot.chat.byok.ollamaEndpoint": "http://old:11434",
        "ollama.launch.configured": True, "editor.fontSize": 14,
    }))  # fmt: skip
    with sqlite3.connect(user / "globalStorage/state.vscdb") as db:
        db.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
        db.execute(
            "INSERT INTO ItemTable VALUES (?, ?)",
            ("chatModelPickerPreferences", '{"ollama/Ollama/old": true, "copilot/gpt-5": true}'),
        )
        db.execute(
            "INSERT INTO ItemTable VALUES (?, ?)",
            ("chat.cachedLanguageModels.v2", json.dumps([
                {"identifier": "ollama/Ollama/4", "metadata": {"vendor": "ollama", "name": "tiny:latest"}},
                {"identifier": "copilot/gpt-5", "metadata": {"vendor": "copilot", "name": "tiny"}},
            ])),
        )  # fmt: skip
        db.execute("INSERT INTO ItemTable VALUES ('theme', 'dark')")
    db.close()

    done = launch_with(machine, setup, "vscode", "--model", "tiny", **extra)
    assert done.returncode == 0, done.stderr
    wait_for(machine.record)  # opened, and left running
    assert machine.started()["argv"][1:] == []
    assert (
        "Warning: VS Code version (1.100.2) is older than the recommended version (1.113)"
        in done.stderr
    )
    assert (
        "GitHub Copilot Chat extension version (0.40.1) is older than the recommended"
        in done.stderr
    )
    assert "Tip: To use Ollama models, open Copilot Chat and click the model picker." in done.stderr
    # the tiny model's template has no tools
    assert "Note: tiny does not support tool calling and may not appear" in done.stderr
    assert "Restarting" not in done.stderr  # it was not running
    assert json.loads((user / "chatLanguageModels.json").read_text()) == [
        {"vendor": "azure", "name": "Mine"},
        {"vendor": "ollama", "name": "Ollama", "url": machine.server.url},
    ]
    assert json.loads((user / "settings.json").read_text()) == {"editor.fontSize": 14}
    assert picker(user) == {
        "copilot/gpt-5": True,
        "ollama/Ollama/old": False,  # launch's list is the truth for Ollama's models
        "ollama/Ollama/4": True,  # the id VS Code cached for it
        "ollama/Ollama/tiny": True,
        "ollama/Ollama/tiny:latest": True,
    }
    with sqlite3.connect(user / "globalStorage/state.vscdb") as db:
        assert db.execute("SELECT value FROM ItemTable WHERE key = 'theme'").fetchone() == ("dark",)
    db.close()
    (backup,) = (machine.home / ".ollama/backup/vscode").glob("state.vscdb.*")
    with sqlite3.connect(backup) as db:  # the database as it was
        assert json.loads(db.execute(
            "SELECT value FROM ItemTable WHERE key = 'chatModelPickerPreferences'"
        ).fetchone()[0]) == {"ollama/Ollama/old": True, "copilot/gpt-5": True}  # fmt: skip
    db.close()
    assert machine.saved() == {"vscode": {"models": ["tiny"]}}


def test_vscode_running_is_restarted_only_after_a_yes(machine, tmp_path):
    setup, extra = vscode_machine(machine, tmp_path)
    Path(extra["FAKE_RUNNING"]).write_text("")
    user = machine.home / ".config/Code/User"
    done = launch_with(machine, setup, "vscode", "--model", "tiny", **extra)
    assert done.returncode == 0, done.stderr  # no terminal to ask in: left as it is
    assert (
        "To get the latest model configuration, restart VS Code when you're ready." in done.stderr
    )
    assert not (user / "globalStorage").exists() and not machine.record.exists()
    assert json.loads((user / "chatLanguageModels.json").read_text())[-1]["vendor"] == "ollama"

    done = launch_with(machine, setup, "vscode", "--model", "tiny", "--yes", **extra)
    assert done.returncode == 0, done.stderr
    wait_for(machine.record)
    calls = [call for call in hermes_calls(machine) if call[:1] in (["pgrep"], ["pkill"])]
    assert ["pkill", "-f", "/usr/share/code/"] in calls and ["pkill", "-f", "/snap/code/"] in calls
    assert "Restarting VS Code..." in done.stderr
    assert picker(user) == {"ollama/Ollama/tiny": True, "ollama/Ollama/tiny:latest": True}


def test_vscode_is_looked_for_only_where_ollama_looks(machine):
    machine.tool("code")  # on PATH is not where VS Code is installed
    done = launch_with(machine, "import ollamakit_cli.vscode as v\nv.candidates = lambda: []",
                       "code", "--model", "tiny")  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr
        == "Error: vscode is not installed, install from https://code.visualstudio.com\n"
    )


FAKE_APP_TOOL = f"""#!{sys.executable}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_RECORD"] + ".calls", "a") as fh:
    fh.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
if name == "osascript" and os.path.exists(os.environ["FAKE_RUNNING"]):
    os.unlink(os.environ["FAKE_RUNNING"])  # the app quits
"""


def macos_machine(machine, tmp_path) -> tuple[str, dict[str, str]]:
    """``sys.platform`` is darwin in the launched process; pgrep, osascript and
    ``/usr/bin/open`` are fakes that record their calls; the app is running while the file
    FAKE_RUNNING names exists."""
    for name in ("pgrep",):
        (machine.bin / name).write_text(FAKE_PGREP)
        (machine.bin / name).chmod(0o755)
    for name in ("osascript", "open"):
        (machine.bin / name).write_text(FAKE_APP_TOOL)
        (machine.bin / name).chmod(0o755)
    setup = (
        "import subprocess, shutil\n"
        "import ollamakit_cli.claude_desktop as claude_desktop\n"
        f"claude_desktop.OPEN = {str(machine.bin / 'open')!r}\n"
        "sys.platform = 'darwin'"
    )
    return setup, {"FAKE_RUNNING": str(tmp_path / "running")}


def test_claude_desktop_restore_on_macos(machine, tmp_path):
    setup, extra = macos_machine(machine, tmp_path)
    done = launch_with(machine, setup, "claude-desktop", "--restore", **extra)
    assert done.stderr == (
        "Error: claude-desktop is not installed, install from https://claude.com/download\n"
    )
    app = machine.home / "Applications/Claude.app"
    app.mkdir(parents=True)
    support = machine.home / "Library/Application Support"
    profile_id = "00000000-0000-4000-8000-000000000114"
    library = support / "Claude-3p/configLibrary"
    library.mkdir(parents=True)
    (support / "Claude-3p/claude_desktop_config.json").write_text(
        json.dumps({"deploymentMode": "3p", "mcpServers": {"x": {}}})
    )
    (library / "_meta.json").write_text(json.dumps({
        "appliedId": profile_id,
        "entries": [{"id": "mine", "name": "Mine"}, {"id": profile_id, "name": "Ollama"}],
    }))  # fmt: skip
    (library / f"{profile_id}.json").write_text(json.dumps({
        "inferenceProvider": "gateway", "inferenceGatewayBaseUrl": "http://127.0.0.1:11435",
        "inferenceGatewayApiKey": "ollama", "inferenceGatewayAuthScheme": "bearer",
        "deploymentDisplayName": "Ollama", "chatTabEnabled": True,
        "disableDeploymentModeChooser": True, "coworkEgressAllowedHosts": ["*"],
        "disableEssentialTelemetry": True, "disableNonessentialTelemetry": True,
        "autoModeEnabled": False,
    }))  # fmt: skip

    # not running: the files restored, then the app opened
    done = launch_with(machine, setup, "claude-app", "--restore", **extra)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "Claude Desktop restored to the usual Claude profile.\n"
    assert hermes_calls(machine) == [["pgrep", "-f", "Claude.app/Contents/MacOS/Claude"],
                                     ["open", str(app)]]  # fmt: skip
    assert json.loads((support / "Claude/claude_desktop_config.json").read_text()) == {
        "deploymentMode": "1p"
    }
    assert json.loads((support / "Claude-3p/claude_desktop_config.json").read_text()) == {
        "deploymentMode": "1p", "mcpServers": {"x": {}},
    }  # fmt: skip
    assert json.loads((library / "_meta.json").read_text()) == {
        "entries": [{"id": "mine", "name": "Mine"}]
    }
    assert json.loads((library / f"{profile_id}.json").read_text()) == {
        "inferenceGatewayApiKey": "ollama", "chatTabEnabled": True,
        "disableDeploymentModeChooser": False,
    }  # fmt: skip
    assert list((machine.home / ".ollama/backup").glob("claude_desktop_config.json.*"))

    # running: outside a terminal the restart needs --yes; with it, quit, restored, reopened
    Path(str(machine.record) + ".calls").unlink()
    Path(extra["FAKE_RUNNING"]).write_text("")
    done = launch_with(machine, setup, "claude-desktop", "--restore", **extra)
    assert done.returncode == 1
    assert done.stderr == (
        "Error: Restart Claude Desktop to use the usual Claude profile? requires confirmation; "
        "re-run with --yes to continue\n"
    )
    done = launch_with(machine, setup, "claude-desktop", "--restore", "--yes", **extra)
    assert done.returncode == 0, done.stderr
    calls = [call[0] for call in hermes_calls(machine)]
    assert calls[-4:] == ["pgrep", "osascript", "pgrep", "open"]
    assert ["osascript", "-e", 'tell application "Claude" to quit'] in hermes_calls(machine)
