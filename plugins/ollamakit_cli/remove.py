"""``ollamakit rm NAME...``: delete models; their blobs go when no other model uses them."""

from __future__ import annotations

import click

from .client import Client


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
def remove_command(names):
    """Remove one or more models."""
    with Client() as client:
        for name in names:
            client.delete(name)
            click.echo(f"deleted '{name}'")


commands = (remove_command,)
