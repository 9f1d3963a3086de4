"""The ``ollamakit`` command: a click group whose commands come from plugins (``register_commands``)."""

from __future__ import annotations

import click

from .. import __version__
from ..plugins import make_plugin_manager
from .core import plugins_command, serve_command


def build_cli(pm=None) -> click.Group:
    pm = pm or make_plugin_manager()

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", "-v", prog_name="ollamakit", message="ollamakit version is %(version)s")
    @click.pass_context
    def cli(ctx):
        """ollamakit: run large language models locally, with the Ollama API."""
        ctx.obj = pm

    cli.add_command(serve_command)
    cli.add_command(plugins_command)
    pm.hook.register_commands(cli=cli)
    return cli


def main() -> None:
    build_cli()(prog_name="ollamakit")
