"""Registers pull, push and the read-only ``/v2/`` registry endpoints, and answers
``pull_model`` (create pulls a ``from`` model the store lacks)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon and httpx, which the CLI does without
# (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = ("ollamakit_registry.api", "ollamakit_registry.pull", "ollamakit_registry.serve")


@hookimpl
def register_routes(app, kernel):
    from . import api, serve

    app.add_route("/api/pull", api.Pull(kernel))
    app.add_route("/api/push", api.Push(kernel))
    app.add_route("/v2", serve.Base())
    app.add_route("/v2/{namespace}/{model}/manifests/{reference}", serve.Manifests(kernel))
    app.add_route("/v2/{namespace}/{model}/blobs/{digest}", serve.Blobs(kernel))


@hookimpl
def pull_model(kernel, name):
    from . import pull

    return pull.pull_model(kernel, name)
