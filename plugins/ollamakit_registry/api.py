"""``POST /api/pull`` and ``POST /api/push``."""

from __future__ import annotations

from ollamakit.web import read_json, stream_response
from ollamakit.web.body import field

from .pull import pull_model
from .push import push_model


def _request(req) -> tuple[str, bool, bool]:
    body = read_json(req)
    name = field(body, "model", str, "") or field(body, "name", str, "")
    return name, field(body, "insecure", bool, False), field(body, "stream", bool, True)


class Pull:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        name, insecure, stream = _request(req)
        stream_response(resp, pull_model(self.kernel, name, insecure), stream)


class Push:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        name, insecure, stream = _request(req)
        stream_response(resp, push_model(self.kernel, name, insecure), stream)
