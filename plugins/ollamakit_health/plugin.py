"""Registers ``/health`` and starts loading the preload list when the server starts."""

from __future__ import annotations

from ollamakit.config import PROBE_PATHS
from ollamakit.hookspecs import hookimpl

# Imported by the hooks: the route imports falcon, which the CLI does without.
DEFERRED_IMPORTS = ("ollamakit_health.readiness",)


@hookimpl
def register_routes(app, kernel):
    from .readiness import Health, readiness

    app.add_route(PROBE_PATHS["readiness"], Health(readiness(kernel)))


@hookimpl
def on_startup(kernel):
    from .readiness import readiness

    readiness(kernel).start()


@hookimpl
def on_shutdown(kernel):
    from .readiness import readiness

    readiness(kernel).stop()
