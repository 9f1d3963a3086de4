"""Registers the embedding routes, ``/api/embed`` and the legacy ``/api/embeddings`` (they need
a scheduler and an engine whose runners can ``embed``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon and numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = ("ollamakit_ollama_api.embed",)


@hookimpl
def register_routes(app, kernel):
    from .embed import Embed, Embeddings

    app.add_route("/api/embed", Embed(kernel))
    app.add_route("/api/embeddings", Embeddings(kernel))
