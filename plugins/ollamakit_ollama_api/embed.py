"""``POST /api/embed`` and the legacy ``POST /api/embeddings``: the kernel's inference service
(``ollamakit.inference.embed``, ``embedding``), answered as JSON."""

from __future__ import annotations

import time

from ollamakit import inference
from ollamakit.web import client_gone, json_response, read_json


class Embed:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        started = time.perf_counter_ns()
        json_response(
            resp,
            inference.embed(self.kernel, read_json(req), gone=client_gone(req), started=started),
        )


class Embeddings:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        json_response(resp, inference.embedding(self.kernel, read_json(req), gone=client_gone(req)))
