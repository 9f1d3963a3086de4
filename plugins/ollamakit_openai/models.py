"""``GET /v1/models`` and ``GET /v1/models/{model}``: the stored models in OpenAI's shape."""

from __future__ import annotations

from ollamakit.errors import NotFound
from ollamakit.names import ModelName
from ollamakit.web import json_response

from .envelope import openai_errors


def model_object(model, requested: str | None = None) -> dict:
    """A stored model in OpenAI's shape; retrieving one echoes the id as it was asked for, and
    its owner is that name's namespace, as in Ollama."""
    ident = requested if requested is not None else model.short_name
    owner = ModelName.parse(ident).namespace if requested is not None else model.name.namespace
    return {"id": ident, "object": "model", "created": int(model.mtime), "owned_by": owner}


class ModelList:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_get(self, req, resp):
        data = [model_object(m) for m in self.kernel.store.list()]
        # Ollama answers null, not [], when there are no models.
        json_response(resp, {"object": "list", "data": data or None}, 200, "application/json")


class ModelRetrieve:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_get(self, req, resp, model: str):
        found = self.kernel.store.get(model) if ModelName.parse(model) else None
        if found is None:
            raise NotFound(f"model '{model}' not found")
        json_response(resp, model_object(found, model), 200, "application/json")
