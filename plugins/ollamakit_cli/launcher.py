"""Bare ``ollamakit`` in a terminal: Ollama's launcher menu, as numbered lines. Outside a
terminal (a script, a pipe) it prints the help.

As in Ollama 0.33 (``cmd/tui``): running a model first, then Claude Code, OpenCode, Hermes and
OpenClaw, then ``More...`` for the other tools in
Ollama's order, then the ones plugins add, by name; a tool that is not installed says
``(install)`` when ``launch`` can install it. A number starts the item with what it used last
(the last model run; the tool's saved model), as Enter does in Ollama's menu; the number and
``>`` picks the model first, as its right arrow does. The choice and the model run are kept in
``~/.ollama/config.json`` (``last_selection``, ``last_model``), Ollama's file, and the menu
comes back after each, until an empty answer or Ctrl-D. The chat is ``run``'s own; this server
has no cloud, so the model list is Ollama's with its cloud off.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from .client import Client
from .display import isatty
from .run import run_command

PROMPT = "Choice (number, or number> to pick the model; empty or Ctrl-D to quit)"
MODEL_PROMPT = "Model (number or name; empty or Ctrl-D to go back)"
PINNED = ("claude", "opencode", "hermes", "openclaw")
# Ollama's launcherIntegrationOrder, for the rest
ORDER = (
    "claude", "chatgpt", "hermes", "openclaw", "opencode", "hermes-desktop", "codex", "copilot",
    "omp", "cline", "droid", "dsh", "pi", "pool", "qwen",
)  # fmt: skip
# tools after which Ollama's menu does not come back (they open an app and return)
EXITS_MENU = ("chatgpt", "codex-app", "vscode")
RUN = "run"


@dataclass(frozen=True)
class Item:
    key: str  # "run", an integration's name, or "more"
    title: str
    description: str


def menu_items(home: Path, show_others: bool) -> list[Item]:
    from . import configfiles, launching

    tools = {
        i.name: i for i in launching.integrations() if not i.hidden and i.supported(sys.platform)
    }
    rank = {name: n for n, name in enumerate(ORDER)}
    pinned = [tools[name] for name in PINNED if name in tools]
    others = sorted(
        (i for name, i in tools.items() if name not in PINNED),
        key=lambda i: (rank.get(i.name, len(rank)), i.name),
    )
    run_model = configfiles.last_choices(home)[1]
    items = [
        Item(
            RUN,
            "Run a model" + (f" ({run_model})" if run_model else ""),
            "Start an interactive chat with a model",
        )
    ]
    shown = pinned + others if show_others else pinned
    for tool in shown:
        title = f"Launch {tool.display_name}"
        saved = configfiles.saved_models(home, tool.name)
        if saved:
            title += f" ({saved[0]})"
        if tool.executable and not launching.find_executable(tool, home):
            title += " (install)" if tool.installer else " (not installed)"
        items.append(Item(tool.name, title, tool.description or f"Open {tool.display_name}"))
    if others and not show_others:
        items.append(Item("more", "More...", "Show additional integrations"))
    return items


def pick_run_model(client: Client, current: str, force: bool) -> str:
    """The last model run while the server has it (unless ``force``), else one picked from
    Ollama's list with its cloud off; empty when the user goes back."""
    from . import launching

    local = [launching.launch_model(entry) for entry in client.tags()]
    if current and not force and launching.find_model(local, current):
        return current
    choices = launching.model_choices(local, launching.recommendations(client), current)
    from . import selector

    if selector.available():  # Ollama's arrow-key list
        return selector.select_one("Select model to run:", choices, current, sys.stdout) or ""
    click.echo("Select model to run:")
    if not choices:
        click.echo("  No local models yet: type a name to pull it (e.g. llama3.2).")
    for number, (name, text) in enumerate(choices, 1):
        click.echo(f"{number:>3}. {name}" + (f"  {text}" if text else ""))
    try:
        answer = click.prompt(MODEL_PROMPT, default="", show_default=False).strip()
    except click.Abort:
        click.echo()
        return ""
    if answer.isdigit() and 1 <= int(answer) <= len(choices):
        return choices[int(answer) - 1][0]
    return answer


def run_a_model(ctx: click.Context, home: Path, force: bool) -> None:
    from . import configfiles

    with Client() as client:
        name = pick_run_model(client, configfiles.last_choices(home)[1], force)
    if not name:
        return
    configfiles.save_last_choice(home, "last_model", name)
    ctx.invoke(run_command, model=name)


def launch_tool(name: str, home: Path, force: bool) -> None:
    from . import launching

    integration = launching.find_integration(name)
    policy = launching.Policy(yes=False, terminal=True)
    try:
        launching.launch(integration, "", False, [], policy, home, use_saved=not force)
    except launching.Cancelled:
        pass


def launcher(ctx: click.Context) -> None:
    from . import configfiles

    home = Path.home()
    show_others = False
    while True:
        last = configfiles.last_choices(home)[0]
        items = menu_items(home, show_others or last not in (RUN, *PINNED, ""))
        for number, item in enumerate(items, 1):
            mark = ">" if item.key == last else " "
            click.echo(f"{mark}{number:>2}. {item.title}\n      {item.description}")
        try:
            answer = click.prompt(PROMPT, default="", show_default=False).strip()
        except click.Abort:  # Ctrl-D or Ctrl-C at the prompt
            click.echo()
            return
        if not answer:
            return
        force = answer.endswith(">")
        number = answer.rstrip(">").strip()
        if not (number.isdigit() and 1 <= int(number) <= len(items)):
            click.echo(f"Choose a number from 1 to {len(items)}.")
            continue
        item = items[int(number) - 1]
        if item.key == "more":
            show_others = True
            continue
        try:
            configfiles.save_last_choice(home, "last_selection", item.key)
            if item.key == RUN:
                run_a_model(ctx, home, force)
            else:
                launch_tool(item.key, home, force)
        except click.ClickException as error:  # shown, and the menu comes back
            error.show()
        if item.key in EXITS_MENU:
            return


def in_a_terminal() -> bool:
    return isatty(sys.stdin) and isatty(sys.stdout)
