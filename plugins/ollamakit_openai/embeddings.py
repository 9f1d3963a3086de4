"""``POST /v1/embeddings``: OpenAI embeddings.

As in Ollama, the request runs as a native embed request (``ollamakit.inference.embed``), so
both answer alike.
"""

from __future__ import annotations

import base64

import numpy as np

from ollamakit import inference
from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, json_response, read_json

from .envelope import openai_errors, typed

FORMATS = ("float", "base64")


def parse_input(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise BadRequest("invalid input")


def encode(vector: list[float], encoding: str):
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


class Embeddings:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        model = typed(body, "model", str, "a string") or ""
        encoding = typed(body, "encoding_format", str, "a string") or "float"
        if encoding.lower() not in FORMATS:  # checked first, and regardless of case, as in Ollama
            raise BadRequest(
                f"Invalid value for 'encoding_format' = {encoding}. "
                "Supported values: ['float', 'base64']."
            )
        encoding = encoding.lower()
        inputs = parse_input(body.get("input"))
        dimensions = typed(body, "dimensions", int, "an integer")
        native = {"model": model, "input": inputs}
        if dimensions:
            native["dimensions"] = dimensions
        result = inference.embed(self.kernel, native, gone=client_gone(req))
        data = [
            {"object": "embedding", "embedding": encode(vector, encoding), "index": i}
            for i, vector in enumerate(result.get("embeddings") or [])
        ]
        count = int(result.get("prompt_eval_count", 0))
        json_response(
            resp,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": count, "total_tokens": count},
            },
            200,
            "application/json",
        )
