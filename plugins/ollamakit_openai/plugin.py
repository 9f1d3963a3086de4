"""Plugin ``openai``: registers the OpenAI-compatible ``/v1`` routes."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .chat import ChatCompletions
from .completions import Completions
from .embeddings import Embeddings
from .models import ModelList, ModelRetrieve


@hookimpl
def register_routes(app, kernel):
    app.add_route("/v1/chat/completions", ChatCompletions(kernel))
    app.add_route("/v1/completions", Completions(kernel))
    app.add_route("/v1/embeddings", Embeddings(app))
    app.add_route("/v1/models", ModelList(kernel))
    app.add_route("/v1/models/{model:path}", ModelRetrieve(kernel))
