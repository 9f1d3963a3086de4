"""OpenClaw for ``ollamakit launch``, as Ollama 0.33 sets it up (``cmd/launch/openclaw.go``):
an ``ollama`` provider listing the saved models in ``~/.openclaw/openclaw.json``, the first the
agents' primary; the first time, a security notice and OpenClaw's own onboarding wizard run
non-interactively against this server; then its gateway (port 18789 unless its config says
otherwise) must answer before ``openclaw tui`` starts, and a gateway launch started itself is
stopped when the TUI exits.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import click

from ollamakit.integrations import (
    ConfigFile,
    Declined,
    Integration,
    LaunchContext,
    LaunchModel,
    Questions,
)

CONFIG = ".openclaw/openclaw.json"
LEGACY_CONFIG = ".clawdbot/clawdbot.json"  # before the rename
SESSIONS = ".openclaw/agents/main/sessions/sessions.json"
DEFAULT_PORT = 18789
API_KEY = "ollama-local"  # OpenClaw registers a provider only with a key
# provider keys from the user's shell, taken away so that OpenClaw only uses this server
CLEARED_KEYS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "XAI_API_KEY",
    "OPENROUTER_API_KEY",
)
OPERATOR_SCOPES = ("operator.read", "operator.admin", "operator.approvals", "operator.pairing")
BOLD, GREY, GREEN, YELLOW, RESET = "\033[1m", "\033[37m", "\033[32m", "\033[33m", "\033[0m"
RESTART_WAIT, GATEWAY_WAIT = 10.0, 30.0  # seconds


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it is absent or does not parse (OpenClaw's own files
    are only read here when they help; a broken one is left to OpenClaw)."""
    from . import configfiles

    try:
        return configfiles.read_json_object(path) if path.exists() else None
    except configfiles.ConfigError:
        return None


def write_json(path: Path, value: Any, home: Path) -> None:
    """Best effort, as Ollama writes these: OpenClaw works without the change."""
    from . import configfiles

    try:
        configfiles.write_with_backup(path, configfiles.json_text(value), home, "openclaw")
    except configfiles.ConfigError:
        pass


def config_files(home: Path) -> list[Path]:
    return [home / CONFIG, home / LEGACY_CONFIG]


def first_readable_config(home: Path) -> dict[str, Any] | None:
    for path in config_files(home):
        config = read_json(path)
        if config is not None:
            return config
    return None


# -- the config: an ``ollama`` provider and the primary model -------------------------------


def model_entry(model: LaunchModel) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model.name,
        "name": model.name,
        "input": ["text", "image"] if model.has("vision") else ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
    }
    if model.has("thinking"):
        entry["reasoning"] = True
    if model.context_length > 0:
        entry["contextWindow"] = model.context_length
    return entry


def openclaw_config(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """The ``ollama`` provider lists the models (fields the user added to an entry stay), the
    first the agents' primary; every other setting stays."""
    section = as_dict(config.get("models"))
    providers = as_dict(section.get("providers"))
    ollama = as_dict(providers.get("ollama"))
    ollama.update(baseUrl=ctx.host, apiKey=API_KEY, api="ollama")
    existing = ollama.get("models")
    by_id = {
        entry["id"]: entry
        for entry in (existing if isinstance(existing, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }
    ollama["models"] = [{**by_id.get(model.name, {}), **model_entry(model)} for model in ctx.models]
    providers["ollama"] = ollama
    section["providers"] = providers
    config["models"] = section
    agents = as_dict(config.get("agents"))
    defaults = as_dict(agents.get("defaults"))
    primary = as_dict(defaults.get("model"))
    primary["primary"] = "ollama/" + ctx.model
    defaults["model"] = primary
    agents["defaults"] = defaults
    config["agents"] = agents
    return config


def clear_session_overrides(text: str | None, ctx: LaunchContext) -> str | None:
    """The main agent's sessions take the new primary model instead of the one they had: their
    ``model`` is replaced, and a per-session override is dropped. As in Ollama, the file is only
    rewritten when a session's ``model`` changed."""
    import json

    from . import configfiles

    if not text:
        return None
    try:
        sessions = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(sessions, dict) or not all(isinstance(s, dict) for s in sessions.values()):
        return None
    changed = False
    for session in sessions.values():
        override = session.get("modelOverride")
        if isinstance(override, str) and override and override != ctx.model:
            session.pop("modelOverride", None)
            session.pop("providerOverride", None)
        model = session.get("model")
        if isinstance(model, str) and model and model != ctx.model:
            session["model"] = ctx.model
            changed = True
    return configfiles.json_text(sessions) if changed else None


def configure_web_search(home: Path) -> None:
    """OpenClaw's bundled ``ollama`` plugin as its web search provider, and the tools of the
    separate ``openclaw-web-search`` plugin earlier launchers installed taken out again."""
    path = home / CONFIG
    config = read_json(path)
    if config is None:
        return
    stale = False
    plugins = as_dict(config.get("plugins"))
    entries = as_dict(plugins.get("entries"))
    tools = as_dict(config.get("tools"))
    web = as_dict(tools.get("web"))
    search = as_dict(web.get("search"))
    fetch = as_dict(web.get("fetch"))
    also_allow = tools.get("alsoAllow")
    kept = []
    for value in also_allow if isinstance(also_allow, list) else []:
        if value in ("ollama_web_search", "ollama_web_fetch"):
            stale = True
        else:
            kept.append(value)
    if kept:
        tools["alsoAllow"] = kept
    else:
        tools.pop("alsoAllow", None)
    if "openclaw-web-search" in entries:
        del entries["openclaw-web-search"]
        stale = True
    ollama = as_dict(entries.get("ollama"))
    ollama["enabled"] = True
    entries["ollama"] = ollama
    plugins["entries"] = entries
    allow = plugins.get("allow")
    if isinstance(allow, list):
        if "openclaw-web-search" in allow:
            stale = True
        allow = [value for value in allow if value != "openclaw-web-search"]
        plugins["allow"] = allow if "ollama" in allow else [*allow, "ollama"]
    installs = plugins.get("installs")
    if isinstance(installs, dict):
        if "openclaw-web-search" in installs:
            del installs["openclaw-web-search"]
            stale = True
        if not installs:
            del plugins["installs"]
    if stale or search.get("provider") is None:
        search["provider"] = "ollama"
    if stale:
        fetch["enabled"] = True
    search["enabled"] = True
    web["search"] = search
    if fetch:
        web["fetch"] = fetch
    tools["web"] = web
    config["plugins"] = plugins
    config["tools"] = tools
    write_json(path, config, home)


def onboarded(home: Path) -> bool:
    """OpenClaw's wizard has run: ``wizard.lastRunAt`` in its config (the first file there)."""
    for path in config_files(home):
        if path.exists():
            config = read_json(path) or {}
            return bool(as_dict(config.get("wizard")).get("lastRunAt"))
    return False


def channels_configured(home: Path) -> bool:
    """A messaging channel in OpenClaw's config says more than whether it is enabled."""
    config = first_readable_config(home)
    channels = as_dict((config or {}).get("channels"))
    return any(
        any(key != "enabled" for key in entry)
        for name, entry in channels.items()
        if name not in ("defaults", "modelByChannel") and isinstance(entry, dict)
    )


def patch_scopes(entry: dict[str, Any], key: str) -> bool:
    existing = entry.get(key)
    existing = existing if isinstance(existing, list) else []
    missing = [scope for scope in OPERATOR_SCOPES if scope not in existing]
    if missing:
        entry[key] = existing + missing
    return bool(missing)


def patch_device_scopes(home: Path) -> None:
    """This machine's paired device gets the operator scopes newer gateways require, so that
    the TUI reconnects without pairing again. Other devices are left as they are."""
    device = (read_json(home / ".openclaw/identity/device-auth.json") or {}).get("deviceId")
    path = home / ".openclaw/devices/paired.json"
    devices = read_json(path)
    if not isinstance(device, str) or not device or devices is None:
        return
    if not all(isinstance(entry, dict) for entry in devices.values()):
        return
    entry = devices.get(device)
    if entry is None:
        return
    changed = patch_scopes(entry, "scopes")
    changed = patch_scopes(entry, "approvedScopes") or changed
    for role, token in as_dict(entry.get("tokens")).items():
        operator = "operator" in (
            role.strip().lower(),
            str(as_dict(token).get("role", "")).strip().lower(),
        )
        if isinstance(token, dict) and operator:
            changed = patch_scopes(token, "scopes") or changed
    if changed:
        write_json(path, devices, home)


# -- its processes ---------------------------------------------------------------------------


def stage_dir(ctx: LaunchContext) -> str:
    return os.environ.get(
        "OPENCLAW_PLUGIN_STAGE_DIR", str(ctx.home / ".openclaw/plugin-runtime-deps")
    )


def tool_env(ctx: LaunchContext) -> dict[str, str]:
    return OPENCLAW.environment(ctx, os.environ)


def install_env(ctx: LaunchContext) -> dict[str, str]:
    return {**OPENCLAW.installer_env, **tool_env(ctx)}


def windows_hint(message: str) -> str:
    if not sys.platform.startswith("win"):
        return message
    return (
        f"{message}\n\nOpenClaw runs best on WSL2.\nQuick setup: wsl --install\n"
        "Guide: https://docs.openclaw.ai/windows"
    )


def can_install_daemon() -> bool:
    """A background service is possible: on Linux only with systemd and a user manager (not in
    most containers, where the gateway runs as launch's child instead)."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.isdir("/run/systemd/system") and bool(os.environ.get("XDG_RUNTIME_DIR"))


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.25)
    return False


def gateway_info(home: Path) -> tuple[str, int]:
    """The gateway's auth token and port, from the first config that parses."""
    gateway = as_dict((first_readable_config(home) or {}).get("gateway"))
    port = gateway.get("port")
    token = as_dict(gateway.get("auth")).get("token")
    port = int(port) if isinstance(port, (int, float)) and 0 < port < 65536 else DEFAULT_PORT
    return (token if isinstance(token, str) else ""), port


def quiet(executable: str, *args: str, env: dict[str, str]) -> int:
    return subprocess.run(
        [executable, *args], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ).returncode  # fmt: skip


@contextmanager
def gateway_ready(executable: str, ctx: LaunchContext) -> Iterator[tuple[str, int]]:
    """The gateway answers while the body runs: a running one is restarted to read the new
    config; else the daemon is started where there can be one; else the gateway runs as this
    process's child, and is stopped when the body ends."""
    token, port = gateway_info(ctx.home)
    env = tool_env(ctx)
    if port_open(port):
        if quiet(executable, "daemon", "restart", env=env) != 0:
            click.echo(f"{YELLOW}  Warning: daemon restart failed{RESET}", err=True)
        if not wait_for_port(port, RESTART_WAIT):
            click.echo(
                f"{YELLOW}  Warning: gateway did not come back after restart{RESET}", err=True
            )
    if can_install_daemon() and not port_open(port):
        if quiet(executable, "daemon", "start", env=env) != 0:
            click.echo(f"{YELLOW}  Warning: daemon start failed{RESET}", err=True)
        elif wait_for_port(port, RESTART_WAIT):
            click.echo(f"{GREY}Starting gateway...{RESET}", err=True)
            yield token, port
            return
    child = None
    if not port_open(port):
        try:
            child = subprocess.Popen(
                [executable, "gateway", "run", "--force"], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            raise click.ClickException(windows_hint(f"failed to start gateway: {exc.strerror}"))
    try:
        click.echo(f"{GREY}Starting gateway...{RESET}", err=True)
        if not wait_for_port(port, GATEWAY_WAIT):
            raise click.ClickException(windows_hint(f"gateway did not start on 127.0.0.1:{port}"))
        yield token, port
    finally:
        if child is not None:
            child.kill()
            child.wait()


def hyperlink(url: str) -> str:
    return f"\033]8;;{url}\033\\{url}\033]8;;\033\\"


def print_ready(executable: str, token: str, port: int, first: bool) -> None:
    url = f"http://127.0.0.1:{port}" + (f"/#token={quote_plus(token)}" if token else "")
    name = os.path.basename(executable)
    click.echo(f"\n{GREEN}✓ OpenClaw is running{RESET}\n", err=True)
    click.echo(f"  Open the Web UI:\n    {hyperlink(url)}\n", err=True)
    if first:
        click.echo(f"{BOLD}  Quick start:{RESET}", err=True)
        click.echo(f"{GREY}    /help             see all commands{RESET}", err=True)
        click.echo(
            f"{GREY}    {name} skills                         browse and install skills{RESET}\n",
            err=True,
        )
        click.echo(f"{YELLOW}  The OpenClaw gateway is running in the background.{RESET}", err=True)
        click.echo(f"{YELLOW}  Stop it with: {name} gateway stop{RESET}\n", err=True)


def run_visible(executable: str, args: Sequence[str], env: dict[str, str], failure: str) -> None:
    code = subprocess.run([executable, *args], env=env).returncode
    if code != 0:
        raise click.ClickException(windows_hint(failure.format(f"exit status {code}")))


def onboard(executable: str, ctx: LaunchContext, questions: Questions) -> None:
    """The first time: the security notice, then OpenClaw's own wizard, non-interactively,
    pointed at this server (an OpenClaw not installed just now is updated first, for the
    wizard's newest flags)."""
    click.echo(f"\n{BOLD}Security{RESET}\n", err=True)
    click.echo("  OpenClaw can read files and run actions when tools are enabled.", err=True)
    click.echo("  A bad prompt can trick it into doing unsafe things.\n", err=True)
    click.echo(f"{GREY}  Learn more: https://docs.openclaw.ai/gateway/security{RESET}\n", err=True)
    if not questions.agree("I understand the risks. Continue?"):
        raise Declined
    env = install_env(ctx)
    if not ctx.installed_now:
        subprocess.run([executable, "update"], env=env, stdin=subprocess.DEVNULL)  # best effort
    click.echo(f"\n{GREEN}Setting up OpenClaw with Ollama...{RESET}", err=True)
    click.echo(f"{GREY}  Model: {ctx.model}{RESET}\n", err=True)
    args = [
        "onboard", "--non-interactive", "--accept-risk", "--auth-choice", "ollama",
        "--custom-base-url", ctx.host, "--custom-model-id", ctx.model,
        # launch starts the gateway itself right after, so a slow first health probe of
        # OpenClaw's own must not fail the whole setup
        "--skip-health", "--skip-channels", "--skip-skills",
    ]  # fmt: skip
    if can_install_daemon():
        args.append("--install-daemon")
    run_visible(
        executable, args, env, "openclaw onboarding failed: {}\n\nTry running: openclaw onboard"
    )
    patch_device_scopes(ctx.home)


def offer_channels(executable: str, ctx: LaunchContext, questions: Questions) -> None:
    """In a terminal (and not under ``--yes``), until a messaging channel is connected or the
    user says later."""
    while questions.asks and not channels_configured(ctx.home):
        click.echo(
            "\nYour assistant can message you on WhatsApp, Telegram, Discord, and more.\n",
            err=True,
        )
        if not questions.agree("Connect a channel (messaging app) now?"):
            return
        run_visible(
            executable,
            ["channels", "add"],
            tool_env(ctx),
            "openclaw channel setup failed: {}\n\nTry running: " + executable + " channels add",
        )


@contextmanager
def openclaw_session(
    executable: str, ctx: LaunchContext, questions: Questions
) -> Iterator[Sequence[str]]:
    first = not onboarded(ctx.home)
    if first:
        onboard(executable, ctx, questions)
    configure_web_search(ctx.home)
    if ctx.extra_args:  # exactly what the user asked for; a gateway only for its TUI
        gateway: AbstractContextManager[Any] = (
            gateway_ready(executable, ctx) if ctx.extra_args[0] == "tui" else nullcontext()
        )
        with gateway:
            yield ()
        return
    offer_channels(executable, ctx, questions)
    patch_device_scopes(ctx.home)
    click.echo(f"\n{GREY}Starting your assistant — this may take a moment...{RESET}\n", err=True)
    with gateway_ready(executable, ctx) as (token, port):
        print_ready(executable, token, port, first)
        yield ("--message", "Wake up, my friend!") if first else ()


OPENCLAW = Integration(
    name="openclaw",
    display_name="OpenClaw",
    description="Personal AI with 100+ skills",
    executable="openclaw",
    other_executables=("clawdbot",),
    aliases=("clawdbot", "moltbot"),
    install_url="https://docs.openclaw.ai",
    installer=("npm", "install", "-g", "openclaw@latest"),
    installer_needs=("npm", "git"),
    installer_env={"OPENCLAW_EAGER_BUNDLED_PLUGIN_DEPS": "1"},
    install_question="OpenClaw is not installed. Install with npm?",
    args=lambda ctx: [] if ctx.extra_args else ["tui"],
    env={"OPENCLAW_PLUGIN_STAGE_DIR": stage_dir},
    unset_env=CLEARED_KEYS,
    files=(
        ConfigFile(CONFIG, update=openclaw_config, legacy_paths=(LEGACY_CONFIG,)),
        ConfigFile(SESSIONS, format="text", edit=clear_session_overrides),
    ),
    lists_models=True,
    around_start=openclaw_session,
)
