"""The kernel's own commands: ``serve`` (alias ``start``) and ``plugins``."""

from __future__ import annotations

import logging

import click

from ..config import Settings, parse_host
from ..drivers import describe_drivers
from ..errors import ListenError, OllamaError
from ..kernel import Kernel


@click.command("serve")
@click.option("--host", "host", help="Address to listen on, as OLLAMA_HOST (host[:port]).")
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="Model directory (OLLAMA_MODELS).",
)
@click.option("--storage", help="Storage driver name (default fs).")
@click.option("--compute", help="Compute backend name (default auto).")
@click.pass_obj
def serve_command(pm, host, models_dir, storage, compute):
    """Start the server."""
    overrides = {"storage": storage, "compute": compute, "models_dir": models_dir}
    if host:
        overrides["host"], overrides["port"] = parse_host(host)
    settings = Settings.from_env(**overrides)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kernel = Kernel(settings, pm)
    try:
        kernel.storage  # fail now, in words, on a misspelled driver or an unusable model directory
    except (OllamaError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    from ..web import RouteCollision, create_app

    try:
        # an API key file that cannot be read, or two plugins adding one path, stops the start in words
        app = create_app(kernel)
    except (OllamaError, RouteCollision) as exc:
        raise click.ClickException(str(exc)) from None
    kernel.hook.on_startup(kernel=kernel)
    transport = kernel.hook.make_transport(kernel=kernel)
    try:
        transport.serve(app, settings.host, settings.port)
    except ListenError as exc:  # a busy port is one line in words, not a traceback
        raise click.ClickException(str(exc)) from None
    finally:
        kernel.hook.on_shutdown(kernel=kernel)
        kernel.close()


# ``start`` is ``serve`` under the second name ``ollama`` accepts; hidden from the list, as there.
start_command = click.Command(
    "start",
    callback=serve_command.callback,
    params=serve_command.params,
    help=serve_command.help,
    hidden=True,
)


@click.command("plugins")
@click.pass_obj
def plugins_command(pm):
    """List installed plugins and drivers, with any load errors."""
    pm.import_deferred()  # a plugin whose route or engine modules fail to import is a load error too
    click.echo("Plugins:")
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        click.echo(f"  {name}: {', '.join(hooks)}")
    for error in pm.load_errors:
        click.echo(f"  {error.name}: FAILED to load {error.target}: {error.error}")
    click.echo("Drivers:")
    for info in describe_drivers():
        status = f"FAILED: {info.error}" if info.error else info.target
        click.echo(f"  {info.kind}/{info.name}: {status}")
