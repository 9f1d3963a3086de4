"""Registers the embedding routes, ``/api/embed`` and the legacy ``/api/embeddings`` (they need
the scheduler plugin and an engine whose runners can ``embed``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .embed import Embed, Embeddings


@hookimpl
def register_routes(app, kernel):
    app.add_route("/api/embed", Embed(kernel))
    app.add_route("/api/embeddings", Embeddings(kernel))
