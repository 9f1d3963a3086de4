"""``POST /api/generate``: the kernel's inference service (``ollamakit.inference.generate``),
its reply objects streamed as NDJSON, or concatenated into one for ``stream: false``."""

from __future__ import annotations

import time

from ollamakit import inference
from ollamakit.web import client_gone, read_json, stream_response
from ollamakit.web.body import field

from .chat import concatenate


def combine(chunks: list[dict]) -> dict:
    """``stream:false``: the response and the thinking, each concatenated."""

    def set_text(final: dict, text: str) -> None:
        final["response"] = text
        thinking = "".join(c.get("thinking", "") for c in chunks)
        if thinking:
            final["thinking"] = thinking

    return concatenate(chunks, lambda c: c.get("response", ""), set_text)


class Generate:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        started = time.perf_counter_ns()
        body = read_json(req)
        stream = field(body, "stream", bool, True)
        events = inference.generate(self.kernel, body, gone=client_gone(req), started=started)
        stream_response(resp, events, stream, final=combine)
