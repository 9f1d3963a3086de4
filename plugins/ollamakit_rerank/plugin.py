"""Plugin ``rerank``: registers ``POST /api/rerank`` and ``POST /v1/rerank``. The scores come
from the kernel's inference service (``ollamakit.inference.rerank``), so this plugin needs no
other plugin's code."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_rerank.routes",)


@hookimpl
def register_routes(app, kernel):
    from .routes import NativeRerank, Rerank

    app.add_route("/api/rerank", NativeRerank(kernel))
    app.add_route("/v1/rerank", Rerank(kernel))
