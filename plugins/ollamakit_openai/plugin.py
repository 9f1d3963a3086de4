"""Plugin ``openai``: registers the OpenAI-compatible ``/v1`` routes."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon and numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks them before serving).
DEFERRED_IMPORTS = (
    "ollamakit_openai.chat",
    "ollamakit_openai.completions",
    "ollamakit_openai.embeddings",
    "ollamakit_openai.models",
    "ollamakit_openai.responses",
    "ollamakit_openai.transcriptions",
)


@hookimpl
def register_routes(app, kernel):
    from .chat import ChatCompletions
    from .completions import Completions
    from .embeddings import Embeddings
    from .models import ModelList, ModelRetrieve
    from .responses import Responses
    from .transcriptions import Transcriptions

    app.add_route("/v1/chat/completions", ChatCompletions(kernel))
    app.add_route("/v1/completions", Completions(kernel))
    app.add_route("/v1/embeddings", Embeddings(kernel))
    app.add_route("/v1/models", ModelList(kernel))
    app.add_route("/v1/models/{model:path}", ModelRetrieve(kernel))
    app.add_route("/v1/responses", Responses(kernel))
    app.add_route("/v1/audio/transcriptions", Transcriptions(kernel))
