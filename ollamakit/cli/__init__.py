"""The ``ollamakit`` command: a click group whose commands come from plugins (``register_commands``)."""

from __future__ import annotations

import click

from ..plugins import make_plugin_manager
from .core import plugins_command, serve_command, start_command
from .version import print_version


@click.command("help")
@click.argument("topic", nargs=-1)
@click.pass_context
def help_command(ctx, topic):
    """Help about any command."""
    root = ctx.find_root()
    command, info = root.command, root
    for name in topic:
        found = command.get_command(info, name) if isinstance(command, click.Group) else None
        if found is None:
            click.echo("Unknown help topic [" + " ".join(f"`{word}`" for word in topic) + "]")
            click.echo(root.get_usage())
            return
        command, info = found, click.Context(found, info_name=name, parent=info)
    click.echo(command.get_help(info))


def build_cli(pm=None) -> click.Group:
    pm = pm or make_plugin_manager()

    @click.group(
        context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True
    )
    @click.option(
        "-v",
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=print_version,
        help="Show the server's version and this client's.",
    )
    @click.pass_context
    def cli(ctx):
        """ollamakit: run large language models locally, with the Ollama API."""
        ctx.obj = pm
        if ctx.invoked_subcommand is None and not pm.hook.run_without_command(ctx=ctx):
            click.echo(ctx.get_help())

    for command in (serve_command, start_command, plugins_command, help_command):
        cli.add_command(command)
    pm.hook.register_commands(cli=cli)
    return cli


def main() -> None:
    build_cli()(prog_name="ollamakit")
