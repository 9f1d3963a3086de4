"""``ollamakit push NAME``: ask the server to push a local model to the registry in its name."""

from __future__ import annotations

import click

from .pull import run_transfer


@click.command("push")
@click.argument("name")
@click.option("--insecure", is_flag=True, help="Use plain http:// to reach the registry.")
def push_command(name, insecure):
    """Push a model to a registry (host/namespace/model:tag)."""
    run_transfer("/api/push", name, insecure)


commands = (push_command,)
