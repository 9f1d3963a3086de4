"""What ``ollamakit launch`` does (the command itself is ``launch.py``, which imports this only
when it runs, to keep the CLI's start quick): set a coding tool up to use this server's models,
and start it, as ``ollama launch`` does.

The tools are integrations (``ollamakit.integrations``), named drivers any plugin can add. For
each, in Ollama's order: the server must answer; the tool must be installed (or is installed,
after a yes, for those with an installer); the model is the ``--model`` given or one picked from
the list Ollama's picker shows with its cloud off (pulled first when missing, after a yes); the
tool's config files are merged
and the models saved in ``~/.ollama/config.json``; then the tool starts with its arguments, the
extra ones, and its environment on top of this one.

Outside a terminal nothing is asked: a question is an error that names ``--yes``, and with
``--yes`` a model must be named. This server has no cloud, so the picker is Ollama's with
``OLLAMA_NO_CLOUD``: the server's recommended models without the cloud ones, then the local
models; a cloud ``--model`` is ignored with Ollama's warning.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import click

from ollamakit import drivers
from ollamakit.integrations import Declined, Integration, LaunchContext, LaunchModel

from . import configfiles
from ollamakit.cli.address import ollama_host_url

from .client import ApiError, Client
from .display import isatty
from .pull import run_transfer

GREEN, RESET = "\033[32m", "\033[0m"
# where to get what an installer needs, as Ollama says it
WHERE_TO_GET = {
    "curl": "curl: https://curl.se/",
    "bash": "bash: https://www.gnu.org/software/bash/",
    "npm": "npm (Node.js): https://nodejs.org/",
    "git": "git: https://git-scm.com/",
}
EXAMPLE = "for example: 'ollamakit launch claude --model qwen3.5'"


# The user said no, or left a question: nothing more is done, and it is no error.
Cancelled = Declined


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

    @property
    def asks(self) -> bool:
        """Whether a question of the tool's own may be put (in a terminal, without --yes)."""
        return self.terminal and not self.yes

    def agree(self, question: str) -> bool:
        """``confirm``, with a no as False rather than the end of the launch."""
        try:
            self.confirm(question)
        except Cancelled:
            return False
        return True

    def ask(self, question: str) -> bool:
        try:
            return click.confirm(question, default=True, err=True)
        except click.Abort:
            click.echo(err=True)
            raise Cancelled from None

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
    if integration.find is not None:
        return integration.find(home)
    for name in (integration.executable, *integration.other_executables):
        found = shutil.which(name) if name else None
        if found:
            return found
    for relative in integration.fallback_paths:  # where its own installer puts it
        candidate = home / relative
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_installed(integration: Integration, home: Path, policy: Policy) -> tuple[str, bool]:
    """The tool's executable, and whether it was installed just now."""
    found = find_executable(integration, home)
    if found:
        return found, False
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
    env = {**integration.installer_env, **os.environ}  # defaults: the user's own win
    if subprocess.run(list(integration.installer), env=env).returncode != 0:
        raise click.ClickException(f"failed to install {integration.name}")
    found = find_executable(integration, home)
    if not found:
        raise click.ClickException(
            f"{integration.name} was installed but the binary was not found on PATH\n\n"
            "You may need to restart your shell"
        )
    click.echo(f"{GREEN}{integration.display_name} installed successfully{RESET}\n", err=True)
    return found, True


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


# Ollama's own list, for when the server's cannot be read (cmd/launch/models.go); the cloud
# ones are dropped below as everywhere else, since this server has no cloud.
FALLBACK_RECOMMENDATIONS = (
    {"model": "gemma4", "description": "Reasoning and code generation locally", "vram_bytes": 12e9},
    {
        "model": "qwen3.5",
        "description": "Reasoning, coding, and visual understanding locally",
        "vram_bytes": 14e9,
    },
)


def is_cloud_name(name: str) -> bool:
    """A name whose tag says cloud (``m:cloud``, ``m:7b-cloud``), as Ollama's modelref reads it."""
    _, colon, tag = name.rpartition(":")
    tag = tag.strip().lower()
    return bool(colon) and (tag == "cloud" or ("/" not in tag and tag.endswith("-cloud")))


def recommendations(client: Client) -> list[dict]:
    """The server's recommended models, or Ollama's built-in ones when it cannot say."""
    try:
        listed = client.json("GET", "/api/experimental/model-recommendations")["recommendations"]
    except (ApiError, KeyError, TypeError, ValueError):
        listed = None
    if not isinstance(listed, list) or not listed:
        listed = list(FALLBACK_RECOMMENDATIONS)
    found, seen = [], set()
    for entry in listed:
        name = str(entry.get("model") or "").strip() if isinstance(entry, dict) else ""
        if name and name not in seen:
            seen.add(name)
            found.append({**entry, "model": name})
    return found


def vram_text(size: object) -> str:
    if not isinstance(size, (int, float)) or size <= 0:
        return ""
    gigabytes = size / 1e9
    return f"~{gigabytes:.0f}GB" if gigabytes == int(gigabytes) else f"~{gigabytes:.1f}GB"


def model_choices(
    local: list[LaunchModel], recommended: list[dict], current: str
) -> list[tuple[str, str]]:
    """The models offered, with what is said of each, in Ollama's order with its cloud off
    (``buildModelListWithRecommendations``, then ``filterCloudItems``): the recommended ones
    first in their own order, then the current one, then the rest downloaded, then the rest not
    downloaded, each by name; a recommended model not downloaded says so, and its size."""
    described = {
        entry["model"]: str(entry.get("description") or "").strip() for entry in recommended
    }
    items: dict[str, str] = {}
    for model in local:
        name = model.name.removesuffix(":latest")
        items.setdefault(name, described.get(name, ""))
    installed = set(items) | {model.name for model in local}
    missing = set()
    for entry in recommended:
        name = entry["model"]
        if name in installed or f"{name}:latest" in installed or name in items:
            continue
        missing.add(name)
        parts = [p for p in (described[name], vram_text(entry.get("vram_bytes"))) if p]
        items[name] = ", ".join([*parts, "(not downloaded)"])
    choices = [(name, text) for name, text in items.items() if not is_cloud_name(name)]
    if not local:
        return choices
    rank = {entry["model"]: i for i, entry in enumerate(recommended)}
    current = current.removesuffix(":latest")
    if current and current not in items:  # ``m`` saved, ``m:7b`` listed
        current = next((n for n in items if n.startswith(current + ":")), current)

    def order(choice: tuple[str, str]) -> tuple:
        name = choice[0]
        if name in rank:
            return (0, rank[name])
        return (1, name != current, name in missing, name.lower())

    return sorted(choices, key=order)


def pick_model(title: str, choices: list[tuple[str, str]], current: str, policy: Policy) -> str:
    """A model from the list, or any other name to pull: Ollama's selector with the arrow keys,
    or numbered lines on a terminal that cannot draw it."""
    if not policy.terminal:
        raise click.ClickException(f"choosing a model needs a terminal; use --model, {EXAMPLE}")
    from . import selector

    if selector.available():  # Ollama's arrow-key list
        picked = selector.select_one(title, choices, current.removesuffix(":latest"))
        if not picked:
            raise Cancelled
        return picked
    click.echo(title, err=True)
    if not choices:
        click.echo("  No local models yet: type a name to pull it (e.g. llama3.2).", err=True)
    current = current.removesuffix(":latest")
    for number, (name, text) in enumerate(choices, 1):
        notes = [text] if text else []
        if name == current:
            notes.append("current")
        note = f"  {'; '.join(notes)}" if notes else ""
        click.echo(f"{number:>3}. {name}{note}", err=True)
    try:
        answer = click.prompt(
            "Model (number or name)", default=current or "", show_default=bool(current), err=True
        ).strip()
    except click.Abort:
        click.echo(err=True)
        raise Cancelled from None
    if answer.isdigit() and 1 <= int(answer) <= len(choices):
        return choices[int(answer) - 1][0]
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
        path = integration.config_path(spec, ctx)
        source = integration.source_path(spec, ctx)
        if spec.format == "json":
            value = configfiles.read_json_object(source)
            if spec.update is not None:
                value = spec.update(value, ctx)
            text = configfiles.json_text(value, spec.indent)
        elif spec.format == "yaml":
            value = configfiles.read_yaml_object(source)
            if spec.update is not None:
                value = spec.update(value, ctx)
            text = configfiles.yaml_text(value, spec.sort_keys)
        elif spec.render is not None:
            text = spec.render(ctx)
        elif spec.edit is not None:
            edited = spec.edit(configfiles.read_text(source), ctx)
            if edited is None:
                continue
            text = edited
        else:
            continue
        configfiles.write_with_backup(path, text, ctx.home, integration.name, spec.private)


def start(
    integration: Integration,
    executable: str,
    ctx: LaunchContext,
    extra: list[str],
    more: Sequence[str] = (),
) -> None:
    argv = [executable, *integration.start_args(ctx), *more, *extra]
    env = integration.environment(ctx, os.environ)
    if integration.detached:
        start_app(argv, env)
        return
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


def start_app(argv: list[str], env: dict[str, str]) -> None:
    """An app is opened and left running, in a session of its own (Ctrl-C here is not its)."""
    if sys.platform == "darwin" and argv[0].endswith(".app"):
        argv = ["open", "-a", argv[0]]
    try:
        subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise click.ClickException(f"could not start {argv[0]}: {exc.strerror}") from None


def restore_integration(integration: Integration, home: Path, policy: Policy) -> None:
    if not integration.supported(sys.platform):  # Ollama checks the platform first here too
        raise click.ClickException(
            integration.unsupported_message or f"{integration.name} is not supported here"
        )
    if integration.restore is not None:
        found = find_executable(integration, home)
        if not found:
            hint = integration.install_hint()
            raise click.ClickException(
                f"{integration.name} is not installed" + (f", {hint}" if hint else "")
            )
        integration.restore(found, home, policy)
        if integration.restore_message:
            click.echo(integration.restore_message, err=True)
        return
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
    use_saved: bool = False,
) -> None:
    """``use_saved``: the model saved for the tool, while the server has it, instead of the
    picker (the bare menu's Enter; ``ollamakit launch TOOL`` always shows the picker)."""
    if integration.restore_only_message:
        raise click.ClickException(integration.restore_only_message)
    if not integration.supported(sys.platform):
        raise click.ClickException(
            integration.unsupported_message or f"{integration.name} is not supported here"
        )
    if not integration.executable:
        raise click.ClickException(
            f"{integration.display_name} cannot be set up by ollamakit launch on this system"
        )
    if integration.check_extra_args and (problem := integration.check_extra_args(tuple(extra))):
        raise click.ClickException(problem)
    with Client() as client:
        local = [launch_model(entry) for entry in client.tags()]  # the server answers, or else
        if model and is_cloud_name(model):  # this server has no cloud: Ollama's cloud-off answer
            click.echo(f"Warning: ignoring --model {model} because cloud is disabled", err=True)
            model = ""
        if policy.yes and not policy.terminal and not model:
            raise click.ClickException(
                f"headless --yes launch for {integration.name} requires --model <model>"
            )
        # Ollama's managed integrations (those it marks onboarded) are installed even for --config
        needs_tool = not configure_only or integration.onboards
        executable, installed_now = (
            ensure_installed(integration, home, policy) if needs_tool else (None, False)
        )
        saved = configfiles.saved_models(home, integration.name)
        if not model and use_saved and saved and find_model(local, saved[0]):
            model = saved[0]
        if not model:
            current = next((name for name in saved if not is_cloud_name(name)), "")
            model = pick_model(
                f"Select model for {integration.display_name}:",
                model_choices(local, recommendations(client) if policy.terminal else [], current),
                current,
                policy,
            )
        ensure_model(client, model, policy)
        local = [launch_model(entry) for entry in client.tags()]  # with what was pulled
        names = [model]
        if integration.lists_available_models:  # every model the picker offers, after it
            offered = model_choices(local, recommendations(client), model)
            names += [name for name, _ in offered if name != model]
    if integration.lists_models:  # the others saved before, while the server still has them
        names += [n for n in saved if n != model and find_model(local, n)]
    # as the user spelled them (``m``, not ``m:latest``), with what the server says of them
    models = tuple(replace(find_model(local, n) or LaunchModel(n), name=n) for n in names)
    ctx = LaunchContext(
        host=ollama_host_url(),
        connectable_host=ollama_host_url(connectable=True),
        model=model,
        models=models,
        home=home,
        extra_args=tuple(extra),
        local_models=tuple(m.name for m in local),
        installed_now=installed_now,
    )
    if integration.files_on_configure:
        write_files(integration, ctx)
        refresh_after_configure(integration, executable, ctx, home)
    saved_names = names if not integration.lists_available_models else [model]
    configfiles.save_models(home, integration.name, saved_names, onboarded=integration.onboards)
    if configure_only:
        if integration.onboards:  # configured; Ollama asks nothing more of these
            return
        policy.confirm(f"Launch {integration.display_name} now?")
    if executable is None:
        executable, installed_now = ensure_installed(integration, home, policy)
        ctx = replace(ctx, installed_now=installed_now)
    check_version(integration, executable)
    if not integration.files_on_configure:
        write_files(integration, ctx)
        refresh_after_configure(integration, executable, ctx, home)
    if integration.notice:
        click.echo(integration.notice, err=True)
    if integration.before_start is not None:
        integration.before_start(executable, ctx, policy.ask if policy.asks else None)
    around = integration.around_start or (lambda *_: nullcontext(()))
    with around(executable, ctx, policy) as more:
        start(integration, executable, ctx, extra, more)


def refresh_after_configure(
    integration: Integration, executable: str | None, ctx: LaunchContext, home: Path
) -> None:
    if integration.after_configure is None:
        return
    executable = executable or find_executable(integration, home)
    if executable:  # with --config and the tool not installed, there is nothing to refresh
        integration.after_configure(executable, ctx)
