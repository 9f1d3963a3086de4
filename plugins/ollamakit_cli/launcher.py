"""Bare ``ollamakit`` in a terminal: pick a model, chat with it, and come back to the list, as
bare ``ollama`` opens its launcher. Outside a terminal (a script, a pipe) it prints the help.

The chat is ``run``'s own (invoked with ``run``'s defaults); a name that is not listed is pulled
first, as ``run`` does. Ollama's menu also lists the coding tools, which here start with
``ollamakit launch TOOL`` (``launch.py``), and offers cloud models; this one runs local models only.
"""

from __future__ import annotations

import sys

import click

from .client import Client
from .display import isatty
from .run import run_command

PROMPT = "Model (number or name; empty or Ctrl-D to quit)"


def menu_lines(models: list[dict]) -> list[str]:
    if not models:
        return ["No local models yet: type a name to pull it (e.g. llama3.2)."]
    return [f"{i:>3}. {model['name']}" for i, model in enumerate(models, 1)]


def choose(answer: str, models: list[dict]) -> str:
    """The model an answer names: a number from the list, or a name as typed."""
    answer = answer.strip()
    if answer.isdigit() and 1 <= int(answer) <= len(models):
        return models[int(answer) - 1]["name"]
    return answer


def launcher(ctx: click.Context) -> None:
    while True:
        with Client() as client:
            models = client.tags()
        click.echo("Chat with a model:")
        for line in menu_lines(models):
            click.echo(line)
        try:
            answer = click.prompt(PROMPT, default="", show_default=False)
        except click.Abort:  # Ctrl-D or Ctrl-C at the prompt
            click.echo()
            return
        name = choose(answer, models)
        if not name:
            return
        try:
            ctx.invoke(run_command, model=name)
        except click.ClickException as error:  # shown, and the list comes back
            error.show()


def in_a_terminal() -> bool:
    return isatty(sys.stdin) and isatty(sys.stdout)
