"""Registers the embedding routes, ``/api/embed`` and the legacy ``/api/embeddings`` (they need
the scheduler plugin and an engine whose runners can ``embed``), and the scoring behind the
rerank routes (``run_rerank``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon and numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = ("ollamakit_ollama_api.embed", "ollamakit_ollama_api.rerank")


@hookimpl
def register_routes(app, kernel):
    from .embed import Embed, Embeddings

    app.add_route("/api/embed", Embed(kernel))
    app.add_route("/api/embeddings", Embeddings(kernel))


@hookimpl
def run_embed(kernel, request, gone):
    from .embed import embed_reply

    return embed_reply(kernel, request, gone=gone)


@hookimpl
def run_rerank(kernel, request, gone):
    from .rerank import rerank_reply

    return rerank_reply(kernel, request, gone=gone)
