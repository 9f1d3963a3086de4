"""Registers the scheduler with the kernel (``kernel.scheduler``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .scheduler import Scheduler


@hookimpl
def make_scheduler(kernel):
    return Scheduler(kernel)

