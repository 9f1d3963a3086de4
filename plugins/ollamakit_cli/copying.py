"""``ollamakit cp SOURCE DESTINATION``: a second name for a model (only the manifest is copied)."""

from __future__ import annotations

import click

from .client import Client


@click.command("cp")
@click.argument("source")
@click.argument("destination")
def copy_command(source, destination):
    """Copy a model."""
    with Client() as client:
        client.copy(source, destination)
    click.echo(f"copied '{source}' to '{destination}'")


commands = (copy_command,)
