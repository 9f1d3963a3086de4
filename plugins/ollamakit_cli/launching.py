"""What ``ollamakit launch`` does (the command itself is ``launch.py``, which imports this only
when it runs, to keep the CLI's start quick): set a coding tool up to use this server's models,
and start it, as ``ollama launch`` does.

The tools are integrations (``ollamakit.integrations``), named drivers any plugin can add. For
each, in Ollama's order: the server must answer; the tool must be installed (or is installed,
after a yes, for those with an installer); the model is the ``--model`` given or one picked from
the local models (pulled first when missing, after a yes); the tool's config files are merged
and the models saved in ``~/.ollama/config.json``; then the tool starts with its arguments, the
extra ones, and its environment on top of this one.

Outside a terminal nothing is asked: a question is an error that names ``--yes``, and with
``--yes`` a model must be named. Ollama's launcher also offers cloud models and its own
recommendations; this one offers the local models, or any name to pull.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import click

from ollamakit import drivers
from ollamakit.integrations import Integration, LaunchContext, LaunchModel

from . import configfiles
from .client import ApiError, Client, server_url
from .display import isatty
from .pull import run_transfer

GREEN, RESET = "\033[32m", "\033[0m"
# where to get what an installer needs, as Ollama says it
WHERE_TO_GET = {
    "curl": "curl: https://curl.se/",
    "bash": "bash: https://www.gnu.org/software/bash/",
    "npm": "npm (Node.js): https://nodejs.org/",
}
EXAMPLE = "for example: 'ollamakit launch claude --model qwen3.5'"


class Cancelled(Exception):
    """The user said no, or left a question: nothing more is done, and it is no error."""


def integrations() -> list[Integration]:
    found = []
    for name in drivers.driver_names("integration"):
        integration = drivers.driver_class("integration", name)
        if isinstance(integration, Integration):
            found.append(integration)
    return found


def find_integration(name: str) -> Integration:
    wanted = name.lower()
    for integration in integrations():
        if wanted == integration.name.lower() or wanted in (a.lower() for a in integration.aliases):
            return integration
    raise click.ClickException(f"unknown integration: {name}")


def interactive() -> bool:
    return isatty(sys.stdin) and isatty(sys.stdout)


class Policy:
    """How questions are answered: asked, answered yes (``--yes``), or refused (no terminal)."""

    def __init__(self, yes: bool, terminal: bool):
        self.yes, self.terminal = yes, terminal

    def confirm(self, question: str) -> None:
        if self.yes:
            return
        if not self.terminal:
            raise click.ClickException(
                f"{question} requires confirmation; re-run with --yes to continue"
            )
        try:
            if click.confirm(question, default=True, err=True):
                return
        except click.Abort:
            click.echo(err=True)
        raise Cancelled


# -- the tool --------------------------------------------------------------------------------


def find_executable(integration: Integration, home: Path) -> str | None:
    found = shutil.which(integration.executable)
    if found:
        return found
    for relative in integration.fallback_paths:  # where its own installer puts it
        candidate = home / relative
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_installed(integration: Integration, home: Path, policy: Policy) -> str:
    found = find_executable(integration, home)
    if found:
        return found
    if not integration.installer:
        hint = integration.install_hint()
        raise click.ClickException(
            f"{integration.name} is not installed" + (f", {hint}" if hint else "")
        )
    missing = [
        WHERE_TO_GET.get(need, need)
        for need in integration.installer_needs
        if not shutil.which(need)
    ]
    if missing:
        raise click.ClickException(
            f"{integration.name} is not installed and required dependencies are missing\n\n"
            "Install the following first:\n  " + "\n  ".join(missing) + "\n\n"
            f"Then re-run:\n  ollamakit launch {integration.name}"
        )
    question = (
        integration.install_question or f"{integration.display_name} is not installed. Install now?"
    )
    policy.confirm(question)
    click.echo(f"\nInstalling {integration.display_name}...", err=True)
    if subprocess.run(list(integration.installer)).returncode != 0:
        raise click.ClickException(f"failed to install {integration.name}")
    found = find_executable(integration, home)
    if not found:
        raise click.ClickException(
            f"{integration.name} was installed but the binary was not found on PATH\n\n"
            "You may need to restart your shell"
        )
    click.echo(f"{GREEN}{integration.display_name} installed successfully{RESET}\n", err=True)
    return found


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.lstrip("v").split("-")[0].split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def check_version(integration: Integration, executable: str) -> None:
    if not integration.min_version:
        return
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise click.ClickException(f"failed to get {integration.name} version: {exc}") from None
    words = out.split()
    if len(words) < 2:
        raise click.ClickException(f"unexpected {integration.name} version output: {out}")
    if version_tuple(words[-1]) < version_tuple(integration.min_version):
        update = f", update with: {integration.version_hint}" if integration.version_hint else ""
        raise click.ClickException(
            f"{integration.name} version {words[-1]} is too old, minimum required is "
            f"{integration.min_version}{update}"
        )


# -- the model -------------------------------------------------------------------------------


def launch_model(entry: dict) -> LaunchModel:
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    capabilities = entry.get("capabilities")
    context = details.get("context_length") or entry.get("context_length") or 0
    return LaunchModel(
        name=str(entry.get("name") or entry.get("model") or ""),
        capabilities=tuple(c for c in capabilities if isinstance(c, str))
        if isinstance(capabilities, list)
        else (),
        context_length=context if isinstance(context, int) else 0,
        details=details,
    )


def find_model(models: list[LaunchModel], name: str) -> LaunchModel | None:
    for model in models:
        if model.name == name or model.name.removesuffix(":latest") == name:
            return model
    return None


def pick_model(title: str, models: list[LaunchModel], current: str, policy: Policy) -> str:
    """A model from the list (by number or name), or a name to pull; Ollama shows a menu of
    the same names (``:latest`` left off)."""
    if not policy.terminal:
        raise click.ClickException(f"choosing a model needs a terminal; use --model, {EXAMPLE}")
    names = sorted({model.name.removesuffix(":latest") for model in models})
    click.echo(title, err=True)
    if not names:
        click.echo("  No local models yet: type a name to pull it (e.g. llama3.2).", err=True)
    for number, name in enumerate(names, 1):
        mark = " (current)" if name == current.removesuffix(":latest") else ""
        click.echo(f"{number:>3}. {name}{mark}", err=True)
    try:
        answer = click.prompt(
            "Model (number or name)", default=current or "", show_default=bool(current), err=True
        ).strip()
    except click.Abort:
        click.echo(err=True)
        raise Cancelled from None
    if answer.isdigit() and 1 <= int(answer) <= len(names):
        return names[int(answer) - 1]
    if not answer:
        raise Cancelled
    return answer


def ensure_model(client: Client, name: str, policy: Policy) -> None:
    """The model is on the server: shown, or pulled when it is missing (after a yes)."""
    try:
        client.show(name)
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
    if not policy.yes and not policy.terminal:
        raise click.ClickException(
            f"model \"{name}\" not found; run 'ollamakit pull {name}' first, or use --yes to auto-pull"
        )
    policy.confirm(f"Download {name}?")
    run_transfer("/api/pull", name, insecure=False)


# -- configuring and starting ----------------------------------------------------------------


def write_files(integration: Integration, ctx: LaunchContext) -> None:
    for spec in integration.files:
        path = ctx.home / spec.path
        if spec.format == "json":
            value = configfiles.read_json_object(path)
            if spec.update is not None:
                value = spec.update(value, ctx)
            text = configfiles.json_text(value, spec.indent)
        elif spec.render is not None:
            text = spec.render(ctx)
        elif spec.edit is not None:
            edited = spec.edit(configfiles.read_text(path), ctx)
            if edited is None:
                continue
            text = edited
        else:
            continue
        configfiles.write_with_backup(path, text, ctx.home, integration.name)


def start(integration: Integration, executable: str, ctx: LaunchContext, extra: list[str]) -> None:
    argv = [executable, *integration.start_args(ctx), *extra]
    env = {**os.environ, **integration.start_env(ctx)}
    # Ctrl-C belongs to the tool (it cancels a turn there): this process only waits. A handler,
    # not SIG_IGN, since an ignored signal would stay ignored in the tool too.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        code = subprocess.Popen(argv, env=env).wait()
    except OSError as exc:  # not a program after all (a broken script, no permission)
        raise click.ClickException(f"could not start {executable}: {exc.strerror}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0:
        raise click.ClickException(f"exit status {code}")


def restore_integration(integration: Integration, home: Path) -> None:
    if not integration.restore_files:
        raise click.ClickException(f"{integration.name} does not support --restore")
    for relative in integration.restore_files:
        try:
            (home / relative).unlink(missing_ok=True)
        except OSError as exc:  # a folder in its place, a folder we may not write
            raise click.ClickException(f"cannot remove {home / relative}: {exc.strerror}") from None
    if integration.restore_message:
        click.echo(integration.restore_message, err=True)


def launch(
    integration: Integration,
    model: str,
    configure_only: bool,
    extra: list[str],
    policy: Policy,
    home: Path,
) -> None:
    if integration.check_extra_args and (problem := integration.check_extra_args(tuple(extra))):
        raise click.ClickException(problem)
    with Client() as client:
        local = [launch_model(entry) for entry in client.tags()]  # the server answers, or else
        if policy.yes and not policy.terminal and not model:
            raise click.ClickException(
                f"headless --yes launch for {integration.name} requires --model <model>"
            )
        executable = None if configure_only else ensure_installed(integration, home, policy)
        saved = configfiles.saved_models(home, integration.name)
        if not model:
            model = pick_model(
                f"Select model for {integration.display_name}:",
                local,
                saved[0] if saved else "",
                policy,
            )
        ensure_model(client, model, policy)
        local = [launch_model(entry) for entry in client.tags()]  # with what was pulled
    names = [model]
    if integration.lists_models:  # the others saved before, while the server still has them
        names += [n for n in saved if n != model and find_model(local, n)]
    # as the user spelled them (``m``, not ``m:latest``), with what the server says of them
    models = tuple(replace(find_model(local, n) or LaunchModel(n), name=n) for n in names)
    ctx = LaunchContext(host=server_url(), model=model, models=models, home=home)
    if integration.files_on_configure:
        write_files(integration, ctx)
    configfiles.save_models(home, integration.name, names)
    if configure_only:
        policy.confirm(f"Launch {integration.display_name} now?")
    executable = executable or ensure_installed(integration, home, policy)
    check_version(integration, executable)
    if not integration.files_on_configure:
        write_files(integration, ctx)
    start(integration, executable, ctx, extra)
