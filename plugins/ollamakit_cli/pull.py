"""``ollamakit pull NAME``: ask the server to pull a model from its registry, showing progress."""

from __future__ import annotations

import click

from ollamakit.names import ModelName

from .client import Client
from .progress import Progress


def show_transfer(progress: Progress, message: dict) -> None:
    """A message with a digest and a total is a bar for that blob; anything else a line."""
    status = str(message.get("status") or "")
    total, completed, digest = message.get("total"), message.get("completed"), message.get("digest")
    if isinstance(total, int) and total >= 0 and isinstance(digest, str) and digest:
        done = completed if isinstance(completed, int) else 0
        progress.bar(digest, status, total).update(done, total)
    elif status:
        progress.status(status)


def run_transfer(path: str, name: str, insecure: bool) -> None:
    if ModelName.parse(name) is None:
        raise click.ClickException(f"invalid model name: {name}")
    progress = Progress()
    body = {"model": name, "stream": True, **({"insecure": True} if insecure else {})}
    try:
        with Client() as client:
            for message in client.stream(path, body):
                show_transfer(progress, message)
    finally:
        progress.close()


@click.command("pull")
@click.argument("name")
@click.option("--insecure", is_flag=True, help="Use plain http:// to reach the registry.")
def pull_command(name, insecure):
    """Pull a model from a registry."""
    run_transfer("/api/pull", name, insecure)


commands = (pull_command,)
