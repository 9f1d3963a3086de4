"""Registers ``/api/export``, ``/api/import`` and the ``export`` and ``import`` commands."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hooks: the routes import falcon, which the CLI does without.
DEFERRED_IMPORTS = ("ollamakit_archive.api",)


@hookimpl
def register_routes(app, kernel):
    from . import api

    app.add_route("/api/export", api.Export(kernel))
    app.add_route("/api/import", api.Import(kernel))


@hookimpl
def register_commands(cli):
    from . import commands

    cli.add_command(commands.export_command)
    cli.add_command(commands.import_command)
