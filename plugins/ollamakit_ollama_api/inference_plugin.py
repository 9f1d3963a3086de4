"""Registers the inference routes: generate, chat and ps (they need a scheduler: ``make_scheduler``)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon, and through the inference service jinja2,
# llguidance and numpy, which the CLI does without (``PluginManager.import_deferred`` checks
# them before serving).
DEFERRED_IMPORTS = (
    "ollamakit_ollama_api.chat",
    "ollamakit_ollama_api.generate",
    "ollamakit_ollama_api.ps",
)


@hookimpl
def register_routes(app, kernel):
    from .chat import Chat
    from .generate import Generate
    from .ps import Ps

    app.add_route("/api/generate", Generate(kernel))
    app.add_route("/api/chat", Chat(kernel))
    app.add_route("/api/ps", Ps(kernel))
