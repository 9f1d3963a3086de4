"""Registers the native API's routes and its start-up work."""

from __future__ import annotations

import logging

from ollamakit.hookspecs import hookimpl

log = logging.getLogger("ollamakit.api")

# The route modules import falcon, jinja2 and numpy: imported by the hooks, so that loading this
# plugin (every ``ollamakit`` command does) stays cheap; ``PluginManager.import_deferred`` checks
# them before serving.
DEFERRED_IMPORTS = (
    "ollamakit_ollama_api.blobs",
    "ollamakit_ollama_api.cloud",
    "ollamakit_ollama_api.create",
    "ollamakit_ollama_api.models",
    "ollamakit_ollama_api.root",
)


@hookimpl
def register_routes(app, kernel):
    from . import blobs, cloud, create, models, root

    app.add_route("/", root.Root())
    app.add_route("/api/version", root.Version())
    app.add_route("/api/blobs/{digest}", blobs.Blob(kernel))
    app.add_route("/api/create", create.Create(kernel))
    app.add_route("/api/tags", models.Tags(kernel))
    app.add_route("/api/show", models.Show(kernel))
    app.add_route("/api/copy", models.Copy(kernel))
    app.add_route("/api/delete", models.Delete(kernel))
    app.add_route("/api/status", cloud.Status(kernel))
    app.add_route("/api/me", cloud.Me())
    app.add_route("/api/signout", cloud.Signout())
    app.add_route("/api/user/keys/{key}", cloud.Signout())  # the older way to sign out
    app.add_route("/api/experimental/web_search", cloud.WebSearch(kernel))
    app.add_route("/api/experimental/web_fetch", cloud.WebFetch(kernel))
    app.add_route("/api/experimental/model-recommendations", cloud.ModelRecommendations())


@hookimpl
def on_startup(kernel):
    # Always, unlike pruning: these are no one's models, only what crashed processes left.
    kernel.store.remove_leftovers()
    if not kernel.settings.noprune:
        removed = kernel.store.prune()
        if removed:
            log.info("pruned %d unreferenced blobs", len(removed))
