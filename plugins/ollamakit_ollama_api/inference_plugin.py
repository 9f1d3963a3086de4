"""Registers the inference routes: generate, chat and ps (they need the scheduler plugin)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .chat import Chat
from .generate import Generate
from .ps import Ps


@hookimpl
def register_routes(app, kernel):
    app.add_route("/api/generate", Generate(kernel))
    app.add_route("/api/chat", Chat(kernel))
    app.add_route("/api/ps", Ps(kernel))
