"""Hook implementations: ollamakit finds this module through the ``ollamakit.plugins`` entry
point and calls every ``@hookimpl`` here alongside those of all other plugins."""

from ollamakit.hookspecs import hookimpl

from .usage import usage_command


@hookimpl
def register_commands(cli):
    cli.add_command(usage_command)
