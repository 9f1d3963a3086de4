"""``/`` and ``/api/version``."""

from ollamakit import OLLAMA_VERSION, __version__
from ollamakit.web import json_response


class Root:
    def on_get(self, req, resp):
        resp.content_type = "text/plain; charset=utf-8"
        resp.data = b"Ollama is running"

    on_head = on_get


class Version:
    def on_get(self, req, resp):
        json_response(resp, {"version": OLLAMA_VERSION, "ollamakit": __version__})

    on_head = on_get
