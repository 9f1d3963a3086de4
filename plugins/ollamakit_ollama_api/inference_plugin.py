"""Registers the inference routes: generate, chat and ps (they need the scheduler plugin)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon, jinja2, llguidance and numpy, which the CLI
# does without (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = ("ollamakit_ollama_api.chat", "ollamakit_ollama_api.generate", "ollamakit_ollama_api.ps")


@hookimpl
def register_routes(app, kernel):
    from .chat import Chat
    from .generate import Generate
    from .ps import Ps

    app.add_route("/api/generate", Generate(kernel))
    app.add_route("/api/chat", Chat(kernel))
    app.add_route("/api/ps", Ps(kernel))


@hookimpl
def run_chat(kernel, request, gone, relax_thinking):
    from .chat import chat_events

    return chat_events(kernel, request, gone=gone, relax_thinking=relax_thinking)


@hookimpl
def run_generate(kernel, request, gone):
    from .generate import generate_events

    return generate_events(kernel, request, gone=gone)
