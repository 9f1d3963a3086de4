"""``GET /api/ps``: the models in memory, the one expiring last first."""

from __future__ import annotations

from ollamakit.web import json_response


class Ps:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_get(self, req, resp):
        json_response(resp, {"models": self.kernel.scheduler.ps()})
