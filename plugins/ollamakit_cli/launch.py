"""``ollamakit launch [INTEGRATION] [-- EXTRA...]``: set a coding tool up to use this server's
models, and start it, as ``ollama launch`` does (the work is in ``launching.py``)."""

from __future__ import annotations

from pathlib import Path

import click


class LaunchCommand(click.Command):
    """Takes what follows ``--`` aside, for the tool, before click reads the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["launch.extra"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from . import launching

        rows = [
            (i.name, i.display_name + (f" (aliases: {', '.join(i.aliases)})" if i.aliases else ""))
            for i in launching.integrations()
            if not i.hidden
        ]
        with formatter.section("Supported integrations"):
            formatter.write_dl(rows)


@click.command("launch", cls=LaunchCommand)
@click.argument("args", nargs=-1, metavar="[INTEGRATION] [-- [EXTRA_ARGS...]]")
@click.option("--model", default="", help="Model to use.")
@click.option("--config", "configure_only", is_flag=True, help="Configure without launching.")
@click.option("--restore", is_flag=True, help="Restore an integration to its default profile.")
@click.option("-y", "--yes", is_flag=True, help="Automatically answer yes to confirmation prompts.")
@click.pass_context
def launch_command(ctx, args, model, configure_only, restore, yes):
    """Launch the model menu or an integration.

    Sets a coding tool up to use this server's models and starts it. Without an integration,
    this is bare ``ollamakit``. Extra arguments for the tool go after ``--``, e.g.
    ``ollamakit launch codex -- --sandbox workspace-write``.
    """
    from . import launching

    extra = ctx.meta.get("launch.extra", [])
    if len(args) > 1:
        raise click.ClickException(
            f"unexpected arguments: {list(args[1:])}\n"
            "Use '--' to pass extra arguments to the integration"
        )
    if not args:
        if model or configure_only or restore or yes or extra:
            raise click.ClickException(
                f"flags and extra args require an integration name, {launching.EXAMPLE}"
            )
        root = ctx.find_root()
        if not root.obj.hook.run_without_command(ctx=ctx):
            click.echo(root.get_help())
        return
    integration = launching.find_integration(args[0])
    home = Path.home()
    if restore and (model or configure_only or extra):
        raise click.ClickException(
            "--restore cannot be combined with --model, --config, or extra args"
        )
    policy = launching.Policy(yes, launching.interactive())
    if restore:
        try:
            launching.restore_integration(integration, home, policy)
        except launching.Cancelled:
            pass
        return
    try:
        launching.launch(integration, model, configure_only, list(extra), policy, home)
    except launching.Cancelled:
        return


commands = (launch_command,)
