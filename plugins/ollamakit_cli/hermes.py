"""Hermes Agent and Hermes Desktop for ``ollamakit launch``, as Ollama 0.33 sets them up
(``cmd/launch/hermes.go``): an ``ollama-launch`` provider and the default model in Hermes's
``config.yaml``, its messaging gateway restarted when it runs (so it reads the new model), an
offer to connect a messaging app when none is, and ``hermes desktop`` for the desktop app.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ollamakit.integrations import ConfigFile, Integration, LaunchContext

PROVIDER_KEY = "ollama-launch"
LEGACY_KEY = "ollama"
PROVIDER_NAME = "Ollama"
PLACEHOLDER_KEY = "ollama"
DESKTOP_MIN_VERSION = (0, 16, 0)
GREY, RESET = "\033[90m", "\033[0m"
INSTALL_SCRIPT = (
    "curl -fsSL https://hermes-agent.nousresearch.com/install.sh | bash -s -- --skip-setup"
)
INSTALL_URL = "https://hermes-agent.nousresearch.com/docs/getting-started/installation/"
# any of these, in Hermes's .env or this environment, means a messaging app is connected
MESSAGING_KEYS = (
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SIGNAL_ACCOUNT",
    "EMAIL_ADDRESS",
    "TWILIO_ACCOUNT_SID",
    "MATRIX_ACCESS_TOKEN",
    "MATRIX_PASSWORD",
    "MATTERMOST_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
    "DINGTALK_CLIENT_ID",
    "FEISHU_APP_ID",
    "WECOM_BOT_ID",
    "WEIXIN_ACCOUNT_ID",
    "BLUEBUBBLES_SERVER_URL",
    "WEBHOOK_ENABLED",
)


def hermes_home(home: Path) -> Path:
    configured = os.environ.get("HERMES_HOME", "").strip()
    return Path(configured) if configured else home / ".hermes"


def base_url(ctx: LaunchContext) -> str:
    return ctx.base_url(connectable=True, suffix="/v1")


def merge_toolsets(current: Any) -> list[Any]:
    """The user's toolsets with ``web`` added (a comma-separated string becomes a list)."""
    if isinstance(current, list):
        items = list(current)
    elif isinstance(current, str) and current.strip():
        items = [part.strip() for part in current.split(",") if part.strip()]
    else:
        return ["hermes-cli", "web"]
    return items if "web" in items else [*items, "web"]


def hermes_config(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    url = base_url(ctx)
    providers = config.get("providers")
    providers = dict(providers) if isinstance(providers, dict) else {}
    entry = next(
        (
            providers[key]
            for key in (PROVIDER_KEY, LEGACY_KEY)
            if isinstance(providers.get(key), dict)
        ),
        {},
    )
    models = list(dict.fromkeys(n.strip() for n in (ctx.model, *ctx.local_models) if n.strip()))
    entry.update(name=PROVIDER_NAME, api=url, default_model=ctx.model, models=models)
    providers[PROVIDER_KEY] = entry
    providers.pop(LEGACY_KEY, None)
    config["providers"] = providers
    custom = config.get("custom_providers")
    kept = [
        item
        for item in (custom if isinstance(custom, list) else [])
        if not (
            isinstance(item, dict)
            and str(item.get("name") or "").strip().lower() == PROVIDER_NAME.lower()
        )
    ]
    if kept:
        config["custom_providers"] = kept
    else:
        config.pop("custom_providers", None)
    section = config.get("model")
    section = section if isinstance(section, dict) else {}
    section.update(provider=PROVIDER_KEY, default=ctx.model, base_url=url, api_key=PLACEHOLDER_KEY)
    config["model"] = section
    config["toolsets"] = merge_toolsets(config.get("toolsets"))
    return config


def gateway_running(status: str) -> bool:
    status = status.lower()
    for stopped in (
        "gateway is not running",
        "gateway service is stopped",
        "gateway service is not loaded",
    ):
        if stopped in status:
            return False
    return any(
        running in status
        for running in (
            "gateway is running",
            "gateway service is running",
            "gateway service is loaded",
        )
    )


def refresh_gateway(executable: str, ctx: LaunchContext) -> None:
    """A running messaging gateway is restarted, so that it answers with the new model."""
    try:
        done = subprocess.run(
            [executable, "gateway", "status"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise click.ClickException(f"check Hermes gateway status: {exc}") from None
    if not gateway_running(done.stdout + done.stderr):
        return
    click.echo(f"{GREY}Refreshing Hermes messaging gateway...{RESET}", err=True)
    if subprocess.run([executable, "gateway", "restart"]).returncode != 0:
        raise click.ClickException("restart Hermes gateway: it failed")
    click.echo(err=True)


def env_file_values(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``export`` allowed, quotes taken off), as Hermes's .env holds them."""
    from .configfiles import ConfigError, read_bytes

    try:  # bounded, and a FIFO is refused rather than waited on for a writer
        data = read_bytes(path)
    except ConfigError:
        return {}
    text = (data or b"").decode("utf-8", errors="replace")
    values = {}
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def messaging_configured(ctx: LaunchContext) -> bool:
    values = env_file_values(hermes_home(ctx.home) / ".env")
    values.update({key: os.environ[key] for key in MESSAGING_KEYS if key in os.environ})
    return any(values.get(key, "").strip() for key in MESSAGING_KEYS)


def offer_gateway_setup(
    executable: str, ctx: LaunchContext, ask: Callable[[str], bool] | None
) -> None:
    """In a terminal, with no extra arguments and nothing connected yet, Hermes's messaging
    setup is offered before it starts."""
    if ask is None or ctx.extra_args or messaging_configured(ctx):
        return
    click.echo("\nHermes can message you on Telegram, Discord, Slack, and more.\n", err=True)
    if not ask("Connect a messaging app now?"):
        return
    if subprocess.run([executable, "gateway", "setup"]).returncode != 0:
        raise click.ClickException(
            "hermes messaging setup failed\n\nTry running: hermes gateway setup"
        )


def version_of(executable: str) -> tuple[int, ...] | None:
    """The first ``vX.Y.Z`` word of ``hermes --version``'s first line, as Ollama reads it."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.strip().split("\n", 1)[0]
    for word in first.split():
        match = re.fullmatch(r"v(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?", word)
        if match:
            return tuple(int(part or 0) for part in match.groups())
    return None


def ensure_desktop_version(
    executable: str, ctx: LaunchContext, ask: Callable[[str], bool] | None
) -> None:
    version = version_of(executable)
    if version is None or version >= DESKTOP_MIN_VERSION:
        return
    shown = "v" + ".".join(map(str, version))
    click.echo(
        f"{GREY}Hermes {shown} is older than the minimum version (v0.16.0) for "
        f"`hermes desktop`; updating...{RESET}",
        err=True,
    )
    if subprocess.run([executable, "update"]).returncode != 0:
        raise click.ClickException("failed to update hermes to v0.16.0 or newer")


def desktop_release_roots(home: Path) -> list[Path]:
    roots = []
    for variable, below in (("HERMES_INSTALL_DIR", ""), ("HERMES_HOME", "hermes-agent")):
        value = os.environ.get(variable, "").strip()
        if value:
            roots.append(Path(value) / below if below else Path(value))
    roots += [home / ".hermes" / "hermes-agent", Path("/usr/local/lib/hermes-agent")]
    return list(dict.fromkeys(root / "apps" / "desktop" / "release" for root in roots))


def desktop_args(ctx: LaunchContext) -> list[str]:
    """``desktop``, with ``--skip-build`` when a packaged app is there and no build flag is
    given."""
    flags = ("--skip-build", "--force-build", "--source", "--build-only", "--help", "-h")
    before_dashes = (
        ctx.extra_args[: ctx.extra_args.index("--")] if "--" in ctx.extra_args else ctx.extra_args
    )
    packaged = any(
        (root / "linux-unpacked" / name).exists()
        for root in desktop_release_roots(ctx.home)
        for name in ("hermes", "Hermes")
    )
    if packaged and not any(arg in flags for arg in before_dashes):
        return ["desktop", "--skip-build"]
    return ["desktop"]


def config_path(ctx: LaunchContext) -> str:
    return str(hermes_home(ctx.home) / "config.yaml")


HERMES = Integration(
    name="hermes",
    display_name="Hermes Agent",
    description="Self-improving AI agent built by Nous Research",
    executable="hermes",
    fallback_paths=(".local/bin/hermes",),
    install_url=INSTALL_URL,
    installer=("bash", "-lc", INSTALL_SCRIPT),
    installer_needs=("bash", "curl", "git"),
    install_question="Hermes is not installed. Install now?",
    files=(ConfigFile(config_path, "yaml", hermes_config),),
    onboards=True,
    after_configure=refresh_gateway,
    before_start=offer_gateway_setup,
)

# the same install and config; it starts ``hermes desktop`` instead, on a new enough Hermes
HERMES_DESKTOP = replace(
    HERMES,
    name="hermes-desktop",
    display_name="Hermes Desktop",
    description="Desktop app for Hermes Agent by Nous Research",
    args=desktop_args,
    before_start=ensure_desktop_version,
)
