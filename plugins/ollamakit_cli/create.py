"""``ollamakit create NAME -f Modelfile``: parse, hash and upload on this side, then ask the
server to build the model, showing its progress."""

from __future__ import annotations

from pathlib import Path

import click

from ollamakit.names import ModelName

from .client import Client
from .files import NotRegularFile, create_plan, open_regular
from .modelfile import MAX_MODELFILE_BYTES, ModelfileError, parse
from .progress import Progress


def read_modelfile(path: str | None) -> tuple[str, Path]:
    """The Modelfile's text and folder. Without ``-f``: ``./Modelfile`` if present, else the
    current folder as the model (``FROM .``)."""
    if path is None:
        default = Path("Modelfile")
        if not default.is_file():
            return "FROM .\n", Path.cwd()
        path = str(default)
    file = Path(path)
    if file.is_dir():
        raise click.ClickException(f"{path} is a folder; -f names a Modelfile")
    try:
        with open_regular(file) as fh:
            data = fh.read(MAX_MODELFILE_BYTES + 1)
        if len(data) > MAX_MODELFILE_BYTES:
            raise click.ClickException(
                f"{path} is more than {MAX_MODELFILE_BYTES} bytes; that is the most a Modelfile may be"
            )
    except FileNotFoundError:
        raise click.ClickException(f"specified Modelfile wasn't found: {path}") from None
    except NotRegularFile:
        raise click.ClickException(f"{path} is not a regular file; -f names a Modelfile") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text") from None
    return text, file.resolve().parent


@click.command("create")
@click.argument("name")
@click.option(
    "-f",
    "--file",
    "modelfile",
    metavar="PATH",
    help="Name of the Modelfile (default: ./Modelfile).",
)
@click.option(
    "-q", "--quantize", metavar="TYPE", help="Quantize the model to this type (e.g. q4_K_M)."
)
@click.option("--draft-quantize", metavar="TYPE", help="Quantize draft model to this level.")
@click.option(
    "--experimental", is_flag=True, help="Enable experimental safetensors model creation."
)
@click.pass_obj
def create_command(pm, name, modelfile, quantize, draft_quantize, experimental):
    """Create a model from a Modelfile."""
    if ModelName.parse(name) is None:
        raise click.ClickException(f"invalid model name: {name}")
    if experimental:
        from .experimental import create_experimental

        create_experimental(pm, name, modelfile, quantize, draft_quantize)
        return
    text, base_dir = read_modelfile(modelfile)
    progress = Progress()
    try:
        parsed = parse(text)
        progress.status("gathering model components")
        plan = create_plan(parsed, base_dir, warn=lambda message: click.echo(message, err=True))
    except ModelfileError as exc:
        raise click.ClickException(str(exc)) from None
    request = {"model": name, **plan.request}
    if quantize:
        request["quantize"] = quantize
    if draft_quantize:
        if not request.get("draft_files"):
            raise click.ClickException("--draft-quantize requires a DRAFT model")
        request["draft_quantize"] = draft_quantize
    try:
        with Client() as client:
            for file in plan.uploads:
                if client.has_blob(file.digest):
                    progress.status(f"using existing blob {file.digest}")
                    continue
                bar = progress.bar(file.digest, f"copying file {file.digest}", file.size)
                client.upload_blob(file.digest, file.path, file.size, bar.update)
                bar.finish()
            for message in client.create(request):
                show_create_progress(progress, message)
    finally:
        progress.close()


def show_create_progress(progress: Progress, message: dict) -> None:
    """A status with ``total`` becomes a bar (keyed by digest, or by status); others a line."""
    status = str(message.get("status") or "")
    total, completed = message.get("total"), message.get("completed")
    if isinstance(total, int) and total > 0:
        key = str(message.get("digest") or status)
        label = status or f"pulling {key[7:19]}"
        progress.bar(key, label, total).update(
            completed if isinstance(completed, int) else 0, total
        )
    elif status:
        progress.status(status)


commands = (create_command,)
