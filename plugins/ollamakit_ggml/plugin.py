"""Plugin ``ggml``: the ``build-ggml`` command (the compute driver itself is an entry point of
the ``ollamakit.compute`` group)."""

from __future__ import annotations

import click

from ollamakit.hookspecs import hookimpl


@click.command("build-ggml")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit non-zero when the build fails (default: warn and keep the prebuilt library).",
)
def build_ggml_command(strict: bool) -> None:
    """Compile ggml for this CPU, so the engine's numbers are llama.cpp's on this machine."""
    from ollamakit.lib.ggml.native import BuildError, build

    try:
        build(log=lambda line: click.echo(line, err=True))
    except BuildError as error:
        click.echo(f"Error: could not build ggml for this CPU: {error}", err=True)
        if strict:
            raise SystemExit(1)
        click.echo("The engine keeps the prebuilt ggml library (AVX2 kernels).", err=True)


@hookimpl
def register_commands(cli):
    cli.add_command(build_ggml_command)
