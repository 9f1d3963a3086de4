"""Claude Desktop for ``ollamakit launch``, as Ollama 0.33's command line handles it
(``cmd/launch/claude_desktop.go``; hidden from its lists there, as here). Ollama switches Claude
Desktop to an "Ollama" third-party profile from its desktop app only, through a gateway of that
app's own; its command line only switches it back: ``--restore``, on macOS. (Its Windows paths
are only reached from the app: on Windows its command line answers that Claude Desktop is only
supported on macOS, as here.)

Restoring puts both of Claude Desktop's profile folders back in their usual (``1p``) mode,
takes the Ollama profile out of the third-party profile list and its gateway settings out of
that profile, then opens Claude Desktop, or restarts it (after a yes) when it is running.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import click

from ollamakit.integrations import Integration, Questions

PROFILE_ID = "00000000-0000-4000-8000-000000000114"  # the Ollama profile's, as Ollama names it
OPEN = "/usr/bin/open"
RUNNING_PATTERN = "Claude.app/Contents/MacOS/Claude"
QUIT_WAIT = 30.0  # seconds, for the quit and the wait together
# the gateway settings Ollama's profile holds, taken out again
PROFILE_KEYS = (
    "inferenceProvider",
    "inferenceGatewayBaseUrl",
    "inferenceGatewayAuthScheme",
    "deploymentDisplayName",
    "inferenceModels",
    "coworkEgressAllowedHosts",
    "autoModeEnabled",
    "disableEssentialTelemetry",
    "disableNonessentialTelemetry",
)


def find_app(home: Path) -> str | None:
    for path in ("/Applications/Claude.app", str(home / "Applications" / "Claude.app")):
        if os.path.exists(path):
            return path
    return None


def read(path: Path, what: str) -> dict[str, Any]:
    from . import configfiles

    try:
        return configfiles.read_json_object(path)  # absent: {}
    except configfiles.ConfigError as exc:
        raise click.ClickException(f"parse Claude Desktop {what}: {exc.message}") from None


def write(path: Path, value: dict[str, Any], home: Path) -> None:
    from . import configfiles

    configfiles.write_with_backup(path, configfiles.json_text(value) + "\n", home)


def restore_files(home: Path) -> None:
    support = home / "Library" / "Application Support"
    usual, third_party = support / "Claude", support / "Claude-3p"
    for folder in (usual, third_party):
        config = read(folder / "claude_desktop_config.json", "config")
        config["deploymentMode"] = "1p"
        write(folder / "claude_desktop_config.json", config, home)
    meta_path = third_party / "configLibrary" / "_meta.json"
    meta = read(meta_path, "config metadata")
    if meta:
        changed = meta.get("appliedId") == PROFILE_ID
        if changed:
            del meta["appliedId"]
        entries = meta.get("entries")
        if isinstance(entries, list):
            kept = [e for e in entries if not (isinstance(e, dict) and e.get("id") == PROFILE_ID)]
            changed = changed or len(kept) != len(entries)
            meta["entries"] = kept
        if changed:
            write(meta_path, meta, home)
    profile_path = third_party / "configLibrary" / f"{PROFILE_ID}.json"
    profile = read(profile_path, "Ollama profile")
    if profile:
        profile["disableDeploymentModeChooser"] = False
        for key in PROFILE_KEYS:
            profile.pop(key, None)
        write(profile_path, profile, home)


def running() -> bool:
    try:
        done = subprocess.run(
            ["pgrep", "-f", RUNNING_PATTERN], capture_output=True, text=True, timeout=QUIT_WAIT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise click.ClickException(f"check whether Claude Desktop is running: {exc}") from None
    if done.returncode == 1:
        return False
    if done.returncode != 0:
        raise click.ClickException(
            f"check whether Claude Desktop is running: exit status {done.returncode}"
        )
    return bool(done.stdout.strip())


def open_app(app: str) -> None:
    code = subprocess.run([OPEN, app]).returncode
    if code != 0:
        raise click.ClickException(f"exit status {code}")


def quit_and_wait() -> None:
    deadline = time.monotonic() + QUIT_WAIT
    quit_app = ["osascript", "-e", 'tell application "Claude" to quit']
    try:
        code = subprocess.run(quit_app, timeout=QUIT_WAIT).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise click.ClickException(f"quit Claude Desktop: {exc}") from None
    if code != 0:
        raise click.ClickException(f"quit Claude Desktop: exit status {code}")
    while running():
        if time.monotonic() >= deadline:
            raise click.ClickException(
                "Claude Desktop did not quit; quit it manually and re-run the command"
            )
        time.sleep(0.2)


def restore(app: str, home: Path, questions: Questions) -> None:
    restore_files(home)
    if not running():
        open_app(app)
        return
    if not questions.agree("Restart Claude Desktop to use the usual Claude profile?"):
        click.echo(
            "\nQuit and reopen Claude Desktop when you're ready for the profile change to take "
            "effect.",
            err=True,
        )
        return
    quit_and_wait()
    try:  # again: Claude Desktop may have written its files as it quit
        restore_files(home)
    except click.ClickException as exc:
        open_app(app)
        raise click.ClickException(f"reapply Claude Desktop profile: {exc.message}") from None
    open_app(app)


CLAUDE_DESKTOP = Integration(
    name="claude-desktop",
    display_name="Claude Desktop",
    description="Use Ollama models in Claude Desktop",
    executable="Claude.app",
    aliases=("claude-app",),
    install_url="https://claude.com/download",
    find=find_app,
    platforms=("darwin",),
    unsupported_message="Claude Desktop launch is only supported on macOS",
    restore_only_message=(
        "Claude Desktop can only be restored from the command line: "
        "ollamakit launch claude-desktop --restore"
    ),
    restore=restore,
    restore_message="Claude Desktop restored to the usual Claude profile.",
    hidden=True,
)
