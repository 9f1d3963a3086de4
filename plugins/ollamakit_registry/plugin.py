"""Registers pull, push and the read-only ``/v2/`` registry endpoints."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from . import api, serve


@hookimpl
def register_routes(app, kernel):
    app.add_route("/api/pull", api.Pull(kernel))
    app.add_route("/api/push", api.Push(kernel))
    app.add_route("/v2", serve.Base())
    app.add_route("/v2/{namespace}/{model}/manifests/{reference}", serve.Manifests(kernel))
    app.add_route("/v2/{namespace}/{model}/blobs/{digest}", serve.Blobs(kernel))
