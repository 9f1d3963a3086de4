"""``POST /api/chat``: the kernel's inference service (``ollamakit.inference.chat``), its reply
objects streamed as NDJSON, or concatenated into one for ``stream: false``."""

from __future__ import annotations

import time

from ollamakit import inference
from ollamakit.web import client_gone, read_json, stream_response
from ollamakit.web.body import field


def concatenate(chunks: list[dict], text_of, set_text) -> dict:
    """``stream:false``: the last chunk, with the text and log-probabilities of all of them."""
    if not chunks:
        return {}
    final = dict(chunks[-1])
    set_text(final, "".join(text_of(c) for c in chunks))
    logprobs = [entry for c in chunks for entry in (c.get("logprobs") or [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def combine(chunks: list[dict]) -> dict:
    """``stream:false``: content and thinking concatenated, tool calls collected."""

    def text_of(chunk):
        return (chunk.get("message") or {}).get("content", "")

    def set_text(final, text):
        messages = [c.get("message") or {} for c in chunks]
        message = {**final.get("message", {}), "content": text}
        thinking = "".join(m.get("thinking", "") for m in messages)
        calls = [call for m in messages for call in m.get("tool_calls") or ()]
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        final["message"] = message

    return concatenate(chunks, text_of, set_text)


class Chat:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        started = time.perf_counter_ns()
        body = read_json(req)
        stream = field(body, "stream", bool, True)
        events = inference.chat(self.kernel, body, gone=client_gone(req), started=started)
        stream_response(resp, events, stream, final=combine)
