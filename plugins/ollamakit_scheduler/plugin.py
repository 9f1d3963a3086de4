"""Registers the scheduler with the kernel (``kernel.scheduler``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the scheduler imports numpy and the templates (jinja2), which the CLI
# does without (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = ("ollamakit_scheduler.scheduler",)


@hookimpl
def make_scheduler(kernel):
    from .scheduler import Scheduler

    return Scheduler(kernel)
