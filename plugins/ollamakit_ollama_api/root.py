"""``/`` and ``/api/version``."""

from ollamakit import __version__
from ollamakit.web import json_response


class Root:
    def on_get(self, req, resp):
        resp.content_type = "text/plain; charset=utf-8"
        resp.data = b"Ollama is running"

    on_head = on_get


class Version:
    def on_get(self, req, resp):
        json_response(resp, {"version": __version__})

    on_head = on_get
