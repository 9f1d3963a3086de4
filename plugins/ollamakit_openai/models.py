"""``GET /v1/models`` and ``GET /v1/models/{model}``: the stored models in OpenAI's shape."""

from __future__ import annotations

from ollamakit.errors import NotFound
from ollamakit.names import ModelName
from ollamakit.web import json_response

from .envelope import openai_errors


def model_object(model) -> dict:
    return {"id": model.short_name, "object": "model", "created": int(model.mtime), "owned_by": model.name.namespace}


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
        json_response(resp, model_object(found), 200, "application/json")
