"""``POST /api/create``: the request into a ``CreateRequest``, the kernel's create pipeline
(``ollamakit.creation``) run over it, its progress back as NDJSON (or one object)."""

from __future__ import annotations

from ollamakit.create import CreateRequest
from ollamakit.creation import create_model
from ollamakit.web import read_json, stream_response


class Create:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        request = CreateRequest.from_body(read_json(req))
        stream_response(resp, create_model(self.kernel, request), stream=request.stream)
