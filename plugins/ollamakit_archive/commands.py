"""``ollamakit export MODEL... -o FILE`` and ``ollamakit import FILE``, over HTTP to the server
at ``OLLAMA_HOST`` (with ``OLLAMA_API_KEY`` when it has keys), as the other client commands."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

from ollamakit.cli.address import server_url
from ollamakit.config import client_api_key

CHUNK = 1 << 20
MAX_ERROR_BODY = 64 * 1024


def _client():
    import httpx  # here: the CLI starts without it

    key = client_api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return httpx.Client(
        base_url=server_url(), timeout=httpx.Timeout(None, connect=10.0), headers=headers
    )


def _fail(response) -> click.ClickException:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_ERROR_BODY:
            break
    try:
        message = json.loads(body).get("error")
    except (ValueError, AttributeError):
        message = None
    return click.ClickException(
        str(
            message
            or body[:200].decode("utf-8", "replace")
            or f"the server answered {response.status_code}"
        )
    )


@contextmanager
def _progress(label: str, length: int):
    """A progress bar on a terminal (nothing when stderr is a file or a pipe)."""
    if length <= 0 or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


def _send(client, method: str, path: str, **kwargs):
    import httpx

    try:
        response = client.send(client.build_request(method, path, **kwargs), stream=True)
    except httpx.ConnectError:
        raise click.ClickException(
            f"could not connect to the ollamakit server at {client.base_url}; start it with 'ollamakit serve'"
        ) from None
    if response.status_code >= 400:
        try:
            raise _fail(response)
        finally:
            response.close()
    return response


@click.command("export")
@click.argument("models", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive to write (a tar).",
)
def export_command(models, output: Path):
    """Write models, with all their blobs, to one archive (an OCI image layout in a tar)."""
    import httpx

    output = output.expanduser()
    with _client() as client:
        body = {"models": list(models)}
        response = _send(client, "POST", "/api/export", json=body)
        expected = int(response.headers.get("Content-Length", "-1"))
        fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
        written = 0
        try:
            with os.fdopen(fd, "wb") as out, _progress("exporting", expected) as advance:
                try:
                    for chunk in response.iter_raw(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        advance(len(chunk))
                except httpx.HTTPError as exc:
                    raise click.ClickException(
                        f"the connection to the server broke: {exc}"
                    ) from None
                if written != expected:
                    raise click.ClickException(
                        f"the server sent {written} of the archive's {expected} bytes"
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, output)  # whole or absent: never a truncated archive under its name
        finally:
            response.close()
            Path(temp).unlink(missing_ok=True)
    click.echo(f"exported {', '.join(models)} to {output} ({written} bytes)")


@click.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--name",
    help="Record the archive's model under this name instead of its own (an archive of one model).",
)
def import_command(archive: Path, name: str | None):
    """Add the models in an archive made by 'ollamakit export'; the server checks every blob."""
    size = archive.stat().st_size
    params = {"name": name} if name is not None else None
    headers = {"Content-Length": str(size), "Content-Type": "application/x-tar"}
    with _client() as client, _progress("sending", size) as advance:

        def chunks():
            with open(archive, "rb") as fh:
                while block := fh.read(CHUNK):
                    advance(len(block))
                    yield block

        response = _send(
            client, "POST", "/api/import", content=chunks(), headers=headers, params=params
        )
        try:
            reply = json.loads(response.read())
        finally:
            response.close()
    for imported in reply.get("models", []):
        click.echo(f"imported {imported}")
