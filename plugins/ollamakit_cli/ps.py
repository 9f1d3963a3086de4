"""``ollamakit ps`` (the loaded models) and ``ollamakit stop MODEL`` (unload one now)."""

from __future__ import annotations

import click

from .client import Client
from .formatting import human_bytes, human_time, table


def processor(model: dict) -> str:
    size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    if vram <= 0 or size <= 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    gpu = round(vram * 100 / size)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"


def ps_rows(models: list[dict]) -> list[list[str]]:
    rows = []
    for model in models:
        rows.append(
            [
                str(model.get("name") or model.get("model") or ""),
                str(model.get("digest") or "")[:12],
                human_bytes(int(model.get("size") or 0)),
                processor(model),
                str(model.get("context_length") or ""),
                human_time(str(model.get("expires_at") or ""), never="Stopping..."),
            ]
        )
    return rows


@click.command("ps")
def ps_command():
    """List the models loaded in memory."""
    with Client() as client:
        models = client.json("GET", "/api/ps").get("models") or []
    rows = ps_rows([m for m in models if isinstance(m, dict)])
    click.echo(table(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))


@click.command("stop")
@click.argument("model")
def stop_command(model):
    """Unload MODEL from memory now."""
    with Client() as client:
        loaded = client.json("GET", "/api/ps").get("models") or []
        names = {str(m.get("name", "")).lower() for m in loaded if isinstance(m, dict)}
        wanted = model.lower() if ":" in model.rsplit("/", 1)[-1] else f"{model.lower()}:latest"
        if wanted not in names and model.lower() not in names:
            raise click.ClickException(f'couldn\'t find model "{model}" to stop')
        client.json("POST", "/api/generate", {"model": model, "keep_alive": 0, "stream": False})


commands = (ps_command, stop_command)
