"""Registers the native API's routes and its start-up work."""

from __future__ import annotations

import logging

from ollamakit.hookspecs import hookimpl

from . import blobs, create, models, root

log = logging.getLogger("ollamakit.api")


@hookimpl
def register_routes(app, kernel):
    app.add_route("/", root.Root())
    app.add_route("/api/version", root.Version())
    app.add_route("/api/blobs/{digest}", blobs.Blob(kernel))
    app.add_route("/api/create", create.Create(kernel))
    app.add_route("/api/tags", models.Tags(kernel))
    app.add_route("/api/show", models.Show(kernel))
    app.add_route("/api/copy", models.Copy(kernel))
    app.add_route("/api/delete", models.Delete(kernel))


@hookimpl
def on_startup(kernel):
    if not kernel.settings.noprune:
        removed = kernel.store.prune()
        if removed:
            log.info("pruned %d unreferenced blobs", len(removed))
