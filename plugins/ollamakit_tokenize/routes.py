"""``POST /api/tokenize`` and ``POST /api/detokenize``: a model's token ids for a text or a
conversation, and the text of ids.

Both take llama-server's bodies too (``content``, ``add_special``, ``parse_special``,
``with_pieces``; ``tokens``), with a ``model``; llama-server's own paths, ``/tokenize`` and
``/detokenize``, answer the same. The work is the inference service's
(``ollamakit.inference.tokenize``); errors are Ollama's ``{"error": ...}``.
"""

from __future__ import annotations

from ollamakit import inference
from ollamakit.web import client_gone, json_response, read_json


class Tokenize:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        json_response(resp, inference.tokenize(self.kernel, read_json(req), gone=client_gone(req)))


class Detokenize:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        reply = inference.detokenize(self.kernel, read_json(req), gone=client_gone(req))
        json_response(resp, reply)
