"""Visual Studio Code for ``ollamakit launch``, as Ollama 0.33 sets it up (``cmd/launch/vscode.go``;
hidden from its lists there, as here): an ``ollama`` vendor in Copilot Chat's
``chatLanguageModels.json`` pointing at this server, and the saved models shown in Copilot Chat's
model picker, a preference VS Code keeps in its state database (``globalStorage/state.vscdb``,
SQLite). VS Code rewrites that database when it quits, so a running VS Code is quit first (after
a yes), and then opened.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import click

from ollamakit.integrations import ConfigFile, Declined, Integration, LaunchContext, Questions

MIN_VSCODE = "1.113"
MIN_COPILOT_CHAT = "0.41.0"
PICKER_KEY = "chatModelPickerPreferences"
CACHED_MODELS_KEY = "chat.cachedLanguageModels.v2"
LEGACY_SETTINGS = ("github.copilot.chat.byok.ollamaEndpoint", "ollama.launch.configured")
# the processes of VS Code itself, by its install path, so that Cursor and other forks are not
LINUX_PATTERNS = ("/usr/share/code/", "/snap/code/")
MAC_PATTERN = "Visual Studio Code.app/Contents/MacOS/Code"
WINDOWS_PROCESS = (
    "Get-Process Code -ErrorAction SilentlyContinue | "
    "Where-Object { $_.Path -like '*Microsoft VS Code*' }"
)
QUIT_WAIT = 30.0  # seconds
YELLOW, GREY, RESET = "\033[33m", "\033[90m", "\033[0m"


def candidates() -> list[str]:
    """Where VS Code is on this platform; Ollama looks nowhere else (not on PATH)."""
    if sys.platform == "darwin":
        return ["/Applications/Visual Studio Code.app"]
    if sys.platform.startswith("win"):
        local = os.environ.get("LOCALAPPDATA", "")
        return (
            [os.path.join(local, "Programs", "Microsoft VS Code", "bin", "code.cmd")]
            if local
            else []
        )
    return ["/usr/bin/code", "/snap/bin/code"]


def find_vscode(home: Path) -> str | None:
    return next((path for path in candidates() if os.path.exists(path)), None)


def code_cli(binary: str) -> str | None:
    """The command line inside the app bundle on macOS (the bundle cannot answer ``--version``)."""
    if sys.platform == "darwin" and binary.endswith(".app"):
        inner = binary + "/Contents/Resources/app/bin/code"
        return inner if os.path.exists(inner) else None
    return binary


def user_folder(home: Path) -> Path:
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Code" / "User"
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA", "")) / "Code" / "User"
    return home / ".config" / "Code" / "User"


# -- the files: Copilot Chat's model vendors, and old settings taken out ---------------------


def chat_models(text: str | None, ctx: LaunchContext) -> str:
    """The ``ollama`` vendor at the server (any earlier one replaced); the others kept."""
    from . import configfiles

    entries: Any = []
    if text and text.strip():
        try:
            entries = json.loads(text)
        except (ValueError, RecursionError):
            raise configfiles.ConfigError("failed to parse chatLanguageModels.json") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise configfiles.ConfigError("chatLanguageModels.json is not a list of objects")
    kept = [entry for entry in entries if entry.get("vendor") != "ollama"]
    kept.append({"vendor": "ollama", "name": "Ollama", "url": ctx.host})
    return json.dumps(kept, indent=2, ensure_ascii=False)


def legacy_settings(text: str | None, ctx: LaunchContext) -> str | None:
    """The settings earlier Ollama integrations left are taken out. VS Code's settings may hold
    comments; a file plain JSON cannot read is left alone, as Ollama leaves it."""
    try:
        settings = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(settings, dict) or not any(key in settings for key in LEGACY_SETTINGS):
        return None
    for key in LEGACY_SETTINGS:
        settings.pop(key, None)
    return json.dumps(settings, indent=2, ensure_ascii=False)


# -- the model picker, in VS Code's state database -------------------------------------------


def picker_ids(model: str, known: dict[str, str]) -> list[str]:
    """Every id VS Code may know the model by: its cached numeric one, and the named ones."""
    ids = []
    if model in known:
        ids.append(known[model])
    elif ":" not in model and f"{model}:latest" in known:
        ids.append(known[f"{model}:latest"])
    ids.append("ollama/Ollama/" + model)
    if ":" not in model:
        ids.append(f"ollama/Ollama/{model}:latest")
    return ids


def stored_json(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    value = row[0].decode("utf-8", "replace") if isinstance(row[0], bytes) else row[0]
    try:
        return json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):
        return None


def backup_database(path: Path, home: Path) -> None:
    """A consistent copy (through SQLite's own backup, into a scratch file beside it) kept as
    the other files' backups are."""
    from . import configfiles

    fd, scratch = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    os.close(fd)
    try:
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(scratch)) as copy:
            source.backup(copy)
        data = Path(scratch).read_bytes()
    finally:
        Path(scratch).unlink(missing_ok=True)
    configfiles.keep_backup(path, data, path.stat().st_mode & 0o777, home, "vscode")


def show_in_model_picker(home: Path, models: Sequence[str]) -> None:
    """The saved models shown in Copilot Chat's picker, every other Ollama model hidden (the
    launcher's list is the truth); the user's other preferences stay."""

    path = user_folder(home) / "globalStorage" / "state.vscdb"
    fresh = not path.exists()
    if fresh:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        backup_database(path, home)
    with closing(sqlite3.connect(path, timeout=5.0)) as db, db:
        if fresh:  # the table as VS Code makes it
            db.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
        stored = stored_json(db, PICKER_KEY)
        preferences = {
            k: v for k, v in (stored if isinstance(stored, dict) else {}).items()
            if isinstance(v, bool)
        }  # fmt: skip
        known = {}
        cached = stored_json(db, CACHED_MODELS_KEY)
        for entry in cached if isinstance(cached, list) else []:
            meta = entry.get("metadata") if isinstance(entry, dict) else None
            if isinstance(meta, dict) and meta.get("vendor") == "ollama":
                name, ident = meta.get("name"), entry.get("identifier")
                if isinstance(name, str) and name and isinstance(ident, str) and ident:
                    known[name] = ident
        shown = {ident for model in models for ident in picker_ids(model, known)}
        for ident in list(preferences):
            if ident.startswith("ollama/") and ident not in shown:
                preferences[ident] = False
        preferences.update(dict.fromkeys(shown, True))
        value = json.dumps(preferences, sort_keys=True, separators=(",", ":"))
        db.execute(
            "INSERT OR REPLACE INTO ItemTable (key, value) VALUES (?, ?)", (PICKER_KEY, value)
        )


# -- the running app ---------------------------------------------------------------------------


def output(*argv: str) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def running() -> bool:
    if sys.platform == "darwin":
        return bool(output("pgrep", "-f", MAC_PATTERN))
    if sys.platform.startswith("win"):
        found = output(
            "powershell", "-NoProfile", "-Command", WINDOWS_PROCESS + " | Select-Object -First 1"
        )
        return bool((found or "").strip())
    return any(output("pgrep", "-f", pattern) for pattern in LINUX_PATTERNS)


def quit_vscode() -> None:
    """VS Code is asked to quit, and waited for (30 s at most), so that it has written its state
    before the picker is changed under it."""
    if sys.platform == "darwin":
        output("osascript", "-e", 'quit app "Visual Studio Code"')
    elif sys.platform.startswith("win"):
        output("powershell", "-NoProfile", "-Command", WINDOWS_PROCESS + " | Stop-Process -Force")
    else:
        for pattern in LINUX_PATTERNS:
            output("pkill", "-f", pattern)
    click.echo(f"{GREY}Restarting VS Code...{RESET}", err=True)
    deadline = time.monotonic() + QUIT_WAIT
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if not running():
            time.sleep(1.0)  # a moment to finish writing its state database
            return


def version_parts(version: str) -> list[int]:
    return [int(part) if part.isdigit() else 0 for part in version.split(".")]


def older(version: str, minimum: str) -> bool:
    a, b = version_parts(version), version_parts(minimum)
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) < b + [0] * (width - len(b))


def check_versions(binary: str) -> None:
    """Warnings only: VS Code older than 1.113, Copilot Chat missing or older than 0.41.0."""
    cli = code_cli(binary)
    if cli is None:
        return
    out = output(cli, "--version")
    version = out.strip().split("\n")[0].strip() if out else ""
    if version and older(version, MIN_VSCODE):
        click.echo(
            f"\n{YELLOW}Warning: VS Code version ({version}) is older than the recommended "
            f"version ({MIN_VSCODE}){RESET}\nPlease update VS Code to the latest version.\n",
            err=True,
        )
    listed = output(cli, "--list-extensions", "--show-versions")
    if listed is None:
        return
    chat = next(
        (
            line.split("@", 1)[1].strip()
            for line in listed.split("\n")
            if line.lower().startswith("github.copilot-chat@")
        ),
        None,
    )
    if chat is None:
        click.echo(
            f"\n{YELLOW}Warning: GitHub Copilot Chat extension is not installed{RESET}\n"
            'Install it in VS Code: Extensions → search "GitHub Copilot Chat" → Install\n',
            err=True,
        )
    elif older(chat, MIN_COPILOT_CHAT):
        click.echo(
            f"\n{YELLOW}Warning: GitHub Copilot Chat extension version ({chat}) is older than "
            f"the recommended version ({MIN_COPILOT_CHAT}){RESET}\n"
            'Please update it in VS Code: Extensions → search "GitHub Copilot Chat" → Update\n',
            err=True,
        )


def supports_tools(model: str) -> bool | None:
    from .client import ApiError, Client

    try:
        with Client() as client:
            capabilities = client.show(model).get("capabilities") or []
    except (ApiError, OSError, ValueError):
        return None
    return "tools" in capabilities


def update_picker(home: Path, models: Sequence[str]) -> None:
    try:
        show_in_model_picker(home, models)
    except (OSError, sqlite3.Error, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(
            f"{YELLOW}  Warning: could not update VS Code model picker: {message}{RESET}",
            err=True,
        )


@contextmanager
def vscode_session(
    binary: str, ctx: LaunchContext, questions: Questions
) -> Iterator[Sequence[str]]:
    """Before VS Code is opened: warnings about old versions and a model without tools, then
    the picker updated, a running VS Code quit first (after a yes; without one, nothing is
    opened and the picker waits for its next restart)."""
    check_versions(binary)
    models = [model.name for model in ctx.models]
    if supports_tools(models[0]) is False:
        click.echo(
            f"Note: {models[0]} does not support tool calling and may not appear in the "
            "Copilot Chat model picker.",
            err=True,
        )
    click.echo(
        "\nTip: To use Ollama models, open Copilot Chat and click the model picker.\n"
        '     If you don\'t see your models, click "Other models" to find them.\n',
        err=True,
    )
    if running():
        try:
            restart = questions.agree("Restart VS Code?")
        except click.ClickException:  # no terminal to ask in: as a no
            restart = False
        if not restart:
            click.echo(
                "\nTo get the latest model configuration, restart VS Code when you're ready.",
                err=True,
            )
            raise Declined
        quit_vscode()
    update_picker(ctx.home, models)
    yield ()


def settings_path(name: str):
    return lambda ctx: str(user_folder(ctx.home) / name)


VSCODE = Integration(
    name="vscode",
    display_name="Visual Studio Code",
    description="Microsoft's open-source AI code editor",
    executable="code",
    aliases=("code",),
    install_url="https://code.visualstudio.com",
    find=find_vscode,
    detached=True,
    files=(
        ConfigFile(settings_path("chatLanguageModels.json"), format="text", edit=chat_models),
        ConfigFile(settings_path("settings.json"), format="text", edit=legacy_settings),
    ),
    lists_models=True,
    around_start=vscode_session,
    hidden=True,
)
