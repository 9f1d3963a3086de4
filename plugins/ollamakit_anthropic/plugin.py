"""Plugin ``anthropic``: registers ``POST /v1/messages``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the route imports falcon, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_anthropic.messages",)


@hookimpl
def register_routes(app, kernel):
    from .messages import Messages

    app.add_route("/v1/messages", Messages(kernel))
