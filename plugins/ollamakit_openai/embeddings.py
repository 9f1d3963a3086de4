"""``POST /v1/embeddings``: OpenAI embeddings.

As in Ollama, the request runs through the native ``/api/embed`` handler: it is dispatched to
that route inside this process (one WSGI call, no socket), so both answer alike.
"""

from __future__ import annotations

import base64
import json

import falcon.testing
import numpy as np

from ollamakit.errors import BadRequest, NotFound, OllamaError
from ollamakit.web import CLIENT_DISCONNECTED, client_gone, json_response, read_json

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
    def __init__(self, app):
        self.app = app  # the whole app, to reach the native route

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        model = typed(body, "model", str, "a string") or ""
        inputs = parse_input(body.get("input"))
        encoding = typed(body, "encoding_format", str, "a string") or "float"
        if encoding not in FORMATS:
            raise BadRequest(f"Invalid value for 'encoding_format' = {encoding}. "
                             "Supported values: ['float', 'base64'].")
        dimensions = typed(body, "dimensions", int, "an integer")
        native = {"model": model, "input": inputs}
        if dimensions:
            native["dimensions"] = dimensions
        result = self._native(native, client_gone(req))
        data = [{"object": "embedding", "embedding": encode(vector, encoding), "index": i}
                for i, vector in enumerate(result.get("embeddings") or [])]
        count = int(result.get("prompt_eval_count", 0))
        json_response(resp, {"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": count, "total_tokens": count}}, 200, "application/json")

    # -- through /api/embed ----------------------------------------------------------------

    def _native(self, body: dict, gone) -> dict:
        """The native handler's reply, its error raised with the same status. ``gone`` (this
        request's client check) goes with it, so an abandoned batch stops there too."""
        result = falcon.testing.simulate_request(
            self.app, "POST", "/api/embed", body=json.dumps(body),
            headers={"Content-Type": "application/json", "Host": "localhost"},
            extras={CLIENT_DISCONNECTED: gone},
        )
        if result.status_code == 404 and result.headers.get("content-type", "").startswith("text/plain"):
            raise NotFound("embeddings are not available: this server has no /api/embed route")
        try:
            payload = result.json
        except ValueError:
            payload = None
        if result.status_code != 200 or not isinstance(payload, dict):
            message = payload.get("error") if isinstance(payload, dict) else result.text
            raise OllamaError(str(message or "embedding failed"), result.status_code)
        return payload
