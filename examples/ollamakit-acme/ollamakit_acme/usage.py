"""``ollamakit acme-usage``: how much disk each model takes, and how much deleting it frees.

Models share blobs (a copy shares all of them; a fine-tune shares its base weights), so a
model's size is not what ``rm`` gives back. This reads the store directly, through whichever
storage driver is configured, so it works the same on ``fs`` and ``acme``.
"""

from __future__ import annotations

from collections import Counter

import click

from ollamakit.config import Settings
from ollamakit.kernel import Kernel


def human_bytes(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def usage(store) -> tuple[list[dict], int]:
    """Per model: its size and the bytes only it uses; plus the total over distinct blobs."""
    models = store.list()
    users: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    for model in models:
        blobs = [model.manifest.config, *model.manifest.layers]
        for layer in {layer.digest: layer for layer in blobs}.values():
            users[layer.digest] += 1
            sizes[layer.digest] = layer.size
    report = []
    for model in models:
        digests = model.manifest.digests()
        report.append(
            {
                "name": model.short_name,
                "size": sum(sizes[d] for d in digests),
                "unique": sum(sizes[d] for d in digests if users[d] == 1),
                "shared": sum(1 for d in digests if users[d] > 1),
            }
        )
    report.sort(key=lambda row: row["unique"], reverse=True)
    return report, sum(sizes.values())


@click.command("acme-usage")
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="Model directory (OLLAMA_MODELS).",
)
@click.option("--storage", help="Storage driver (OLLAMAKIT_STORAGE, default fs).")
@click.pass_obj
def usage_command(pm, models_dir, storage):
    """Disk usage per model, and what removing each would free."""
    kernel = Kernel(Settings.from_env(models_dir=models_dir, storage=storage), pm)
    report, total = usage(kernel.store)
    rows = [("NAME", "SIZE", "FREED BY RM", "SHARED BLOBS")]
    rows += [
        (r["name"], human_bytes(r["size"]), human_bytes(r["unique"]), str(r["shared"]))
        for r in report
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("    ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    click.echo(
        f"{len(report)} models, {human_bytes(total)} in distinct blobs ({kernel.settings.storage} storage)"
    )
