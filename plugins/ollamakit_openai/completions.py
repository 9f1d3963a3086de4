"""``POST /v1/completions``: OpenAI's legacy text completions, run by the native generate
handler."""

from __future__ import annotations

from ollamakit import inference
from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, json_response, read_json

from .envelope import (
    FINGERPRINT,
    completion_id,
    include_usage,
    now,
    openai_errors,
    sampling_options,
    start_stream,
    stop_list,
    typed,
    usage,
)

ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def native_request(body: dict) -> dict:
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRequest("invalid type for 'prompt': only a string is supported")
    options = sampling_options(body, stop_list(body), top_p_zero_means_one=True)
    for key in ("frequency_penalty", "presence_penalty"):
        options.setdefault(key, 0.0)
    native = {
        "model": typed(body, "model", str, "a string") or "",
        "prompt": prompt,
        "options": options,
        "stream": True,
    }
    suffix = typed(body, "suffix", str, "a string")
    if suffix:
        native["suffix"] = suffix
    logprobs = typed(body, "logprobs", int, "an integer")
    if logprobs and logprobs > 0:  # asked for, though the reply never carries them (as in Ollama)
        native["logprobs"] = True
        native["top_logprobs"] = logprobs  # over 20 is the native handler's 400
    if body.get("_debug_render_only") is True:
        native["_debug_render_only"] = True
    return native


class Completions:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        stream = typed(body, "stream", bool, "a boolean") or False
        events = inference.generate(self.kernel, native_request(body), gone=client_gone(req))
        if stream:
            start_stream(resp, self._chunks(events, body))
        else:
            json_response(resp, self._completion(events, body), 200, "application/json")

    def _completion(self, events, body: dict) -> dict:
        text, final = [], {}
        for event in events:
            text.append(event.get("response", ""))
            if event.get("done"):
                final = event
        return {
            "id": completion_id("cmpl"),
            "object": "text_completion",
            "created": now(),
            "model": body.get("model", ""),
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "text": "".join(text),
                    "index": 0,
                    "finish_reason": final.get("done_reason") or None,
                }
            ],
            "usage": usage(final),
        }

    def _chunks(self, events, body: dict):
        ident, created, model = completion_id("cmpl"), now(), body.get("model", "")
        with_usage = include_usage(body)

        def chunk(text: str, finish=None) -> dict:
            obj = {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{"text": text, "index": 0, "finish_reason": finish}],
            }
            if with_usage:
                obj["usage"] = dict(ZERO_USAGE)
            return obj

        for event in events:
            if event.get("done"):
                yield chunk("", event.get("done_reason") or None)
                if with_usage:
                    last = chunk("")
                    last["choices"], last["usage"] = [], usage(event)
                    yield last
                return
            yield chunk(event.get("response", ""))
