"""Registers the client commands. A new command is one module with a ``commands`` tuple and one
line in ``COMMAND_MODULES``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from . import account, copying, create, listing, pull, push, remove, show
from . import launch, launcher, ps, run

COMMAND_MODULES = (
    create,
    listing,
    show,
    copying,
    remove,
    pull,
    push,
    run,
    ps,
    account,
    launch,
)


@hookimpl
def register_commands(cli):
    for module in COMMAND_MODULES:
        for command in module.commands:
            cli.add_command(command)


@hookimpl
def run_without_command(ctx):
    if not launcher.in_a_terminal():
        return None
    launcher.launcher(ctx)
    return True
