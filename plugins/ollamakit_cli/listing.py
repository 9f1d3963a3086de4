"""``ollamakit list`` (alias ``ls``): the local models, newest first."""

from __future__ import annotations

import click

from .client import Client
from .formatting import human_bytes, human_time, table


def model_rows(models: list[dict], prefix: str | None = None) -> list[list[str]]:
    rows = []
    for model in models:
        name = str(model.get("name") or model.get("model") or "")
        if prefix and not name.lower().startswith(prefix.lower()):
            continue
        size = "-" if model.get("remote_model") else human_bytes(int(model.get("size") or 0))
        digest = str(model.get("digest") or "")
        rows.append([name, digest[:12], size, human_time(str(model.get("modified_at") or ""))])
    return rows


@click.command("list")
@click.argument("prefix", required=False)
def list_command(prefix):
    """List models (those whose name starts with PREFIX, if given)."""
    with Client() as client:
        rows = model_rows(client.tags(), prefix)
    click.echo(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))


# ``ls`` is the same command under the short name ``ollama`` users type.
ls_command = click.Command(
    "ls",
    callback=list_command.callback,
    params=list_command.params,
    help=list_command.help,
    hidden=True,
)

commands = (list_command, ls_command)
