"""``POST /v1/embeddings``: OpenAI embeddings.

As in Ollama, the request runs through the native ``/api/embed`` handler: it is dispatched to
that route inside this process. A server without that route (an install without the native
embed plugin) embeds directly with the loaded model's runner instead.
"""

from __future__ import annotations

import base64
import json

import falcon.testing
import numpy as np

from ollamakit.errors import BadRequest, NotFound, OllamaError
from ollamakit.names import ModelName
from ollamakit.web import json_response, read_json

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
    def __init__(self, kernel, app=None):
        self.kernel = kernel
        self.app = app

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        model = typed(body, "model", str, "a string") or ""
        inputs = parse_input(body.get("input"))
        encoding = typed(body, "encoding_format", str, "a string") or "float"
        if encoding not in FORMATS:
            raise BadRequest(f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64'].")
        dimensions = typed(body, "dimensions", int, "an integer")
        native = {"model": model, "input": inputs}
        if dimensions:
            native["dimensions"] = dimensions
        result = self._native(native) if self.app is not None else None
        if result is None:
            result = direct_embed(self.kernel, native)
        data = [{"object": "embedding", "embedding": encode(vector, encoding), "index": i}
                for i, vector in enumerate(result.get("embeddings") or [])]
        count = int(result.get("prompt_eval_count", 0))
        json_response(resp, {"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": count, "total_tokens": count}}, 200, "application/json")

    # -- through /api/embed ----------------------------------------------------------------

    def _native(self, body: dict) -> dict | None:
        """The native handler's reply; None when this server has no ``/api/embed`` route."""
        result = falcon.testing.simulate_request(
            self.app, "POST", "/api/embed", body=json.dumps(body), headers={"Content-Type": "application/json", "Host": "localhost"},
        )
        if result.status_code == 404 and result.headers.get("content-type", "").startswith("text/plain"):
            return None
        try:
            payload = result.json
        except ValueError:
            payload = None
        if result.status_code != 200 or not isinstance(payload, dict):
            message = payload.get("error") if isinstance(payload, dict) else result.text
            raise OllamaError(str(message or "embedding failed"), result.status_code)
        return payload


def direct_embed(kernel, body: dict) -> dict:
    """Embed with the runner (L2-normalised, optionally cut to ``dimensions`` and renormalised)."""
    from ollamakit_scheduler.options import merged

    name = body["model"]
    model = kernel.store.get(name) if name and ModelName.parse(name) else None
    if model is None:
        raise NotFound(f'model "{name}" not found, try pulling it first')
    lease = kernel.scheduler.acquire(model, merged(model.params, None))
    try:
        embed = getattr(lease.runner, "embed", None)
        if embed is None:
            raise BadRequest(f"{model.name.display_full()} does not support embedding")
        batches = [lease.tokenizer.encode(text, add_special=True, parse_special=True)[: lease.num_ctx] or [0]
                   for text in body["input"]]
        vectors = embed(batches)
    finally:
        lease.release()
    dimensions = body.get("dimensions")
    out = []
    for vector in vectors:
        vector = np.asarray(vector, dtype=np.float64)
        if dimensions and 0 < dimensions < vector.shape[0]:
            vector = vector[:dimensions]
        norm = np.linalg.norm(vector)
        out.append((vector / norm if norm > 0 else vector).astype(np.float32).tolist())
    return {"embeddings": out, "prompt_eval_count": sum(len(b) for b in batches)}
