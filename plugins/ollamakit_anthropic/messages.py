"""``POST /v1/messages``: the Anthropic Messages API, run as a native chat request.

Replies, stream events and errors follow Ollama's ``anthropic/anthropic.go``
(``ToMessagesResponse``, ``StreamConverter``, ``NewError``) and ``middleware/anthropic.go``:
thinking on a model that cannot think is dropped rather than refused, ``message_start``
carries an estimate of the input tokens, and no ``ping`` is sent (Ollama sends none).

Two choices where Ollama's behaviour would not serve a client: an error after the stream has
begun is sent as Anthropic's ``error`` event (Ollama's stream just stops), and a reply with no
blocks has ``content: []`` (Ollama's is ``null``). A call to the built-in web search is
answered as Ollama answers it when its search fails: a ``server_tool_use`` block and a
``web_search_tool_result`` error ``unavailable`` (ollamakit has no search service).
"""

from __future__ import annotations

import json
import secrets

from ollamakit import inference
from ollamakit.web import (
    client_gone,
    error_status,
    errors_in_envelope,
    json_response,
    read_json,
    sse_frame,
    sse_response,
)

from .request import MessagesRequest, estimate_input_tokens

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def generate_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def error_envelope(exc: BaseException) -> tuple[int, dict]:
    status, message = error_status(exc)
    return status, {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": generate_id("req"),
    }


anthropic_errors = errors_in_envelope(
    error_envelope
)  # responders answering errors in Anthropic's envelope


def stop_reason(done_reason: str, has_calls: bool) -> str:
    if has_calls:
        return "tool_use"
    return {"stop": "end_turn", "length": "max_tokens", "": ""}.get(done_reason, "stop_sequence")


def tool_use(call: dict) -> dict:
    return {
        "type": "tool_use",
        "id": call.get("id", ""),
        "name": call["function"]["name"],
        "input": call["function"].get("arguments") or {},
    }


def message(ident: str, model: str, content: list, reason: str, usage: dict) -> dict:
    reply = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
    }
    if reason:
        reply["stop_reason"] = reason
    return {**reply, "usage": usage}


def usage(event: dict) -> dict:
    return {
        "input_tokens": int(event.get("prompt_eval_count", 0)),
        "output_tokens": int(event.get("eval_count", 0)),
    }


def search_call(calls: list[dict]) -> dict | None:
    return next((c for c in calls if c.get("function", {}).get("name") == "web_search"), None)


def search_failure(ident: str, call: dict) -> list[dict]:
    """The blocks of a web search that could not run (Ollama's ``webSearchErrorResponse``)."""
    query = call["function"].get("arguments", {}).get("query")
    query = query if isinstance(query, str) else ""
    use_id = "srvtoolu_" + ident.removeprefix("msg_")
    return [
        {"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {"query": query}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": use_id,
            "content": {
                "type": "web_search_tool_result_error",
                "error_code": "unavailable" if query else "invalid_request",
            },
        },
    ]


class StreamConverter:
    """Native chat chunks to Messages stream events (Ollama's ``StreamConverter.Process``)."""

    def __init__(self, ident: str, model: str, estimated_input: int):
        self.ident, self.model, self.estimated_input = ident, model, estimated_input
        self.started = False
        self.index = 0
        self.thinking_started = self.thinking_done = self.text_started = False
        self.calls_sent: set[str] = set()

    def start(self, input_tokens: int) -> list:
        self.started = True
        start = message(
            self.ident,
            self.model,
            [],
            "",
            {"input_tokens": input_tokens or self.estimated_input, "output_tokens": 0},
        )
        return [("message_start", {"type": "message_start", "message": start})]

    def _stop_block(self) -> tuple:
        return "content_block_stop", {"type": "content_block_stop", "index": self.index}

    def _block(self, block: dict) -> tuple:
        return "content_block_start", {
            "type": "content_block_start",
            "index": self.index,
            "content_block": block,
        }

    def _delta(self, delta: dict) -> tuple:
        return "content_block_delta", {
            "type": "content_block_delta",
            "index": self.index,
            "delta": delta,
        }

    def process(self, chunk: dict) -> list:
        reply = chunk.get("message") or {}
        events = [] if self.started else self.start(int(chunk.get("prompt_eval_count", 0)))
        if reply.get("thinking") and not self.thinking_done:
            if self.text_started:
                events.append(self._stop_block())
                self.index, self.text_started = self.index + 1, False
            if not self.thinking_started:
                self.thinking_started = True
                events.append(self._block({"type": "thinking", "thinking": ""}))
            events.append(self._delta({"type": "thinking_delta", "thinking": reply["thinking"]}))
        if reply.get("content"):
            events += self._close_thinking()
            if not self.text_started:
                self.text_started = True
                events.append(self._block({"type": "text", "text": ""}))
            events.append(self._delta({"type": "text_delta", "text": reply["content"]}))
        for call in reply.get("tool_calls") or ():
            if call.get("id", "") in self.calls_sent:
                continue
            events += self._close_thinking()
            if self.text_started:
                events.append(self._stop_block())
                self.index, self.text_started = self.index + 1, False
            arguments = json.dumps(
                call["function"].get("arguments") or {}, ensure_ascii=False, separators=(",", ":")
            )
            events += [
                self._block({**tool_use(call), "input": {}}),
                self._delta({"type": "input_json_delta", "partial_json": arguments}),
                self._stop_block(),
            ]
            self.calls_sent.add(call.get("id", ""))
            self.index += 1
        if chunk.get("done"):
            if self.text_started or (self.thinking_started and not self.thinking_done):
                events.append(self._stop_block())
            events += self.finish(
                stop_reason(chunk.get("done_reason", ""), bool(self.calls_sent)), usage(chunk)
            )
        return events

    def _close_thinking(self) -> list:
        if self.thinking_started and not self.thinking_done:
            self.thinking_done = True
            event = self._stop_block()
            self.index += 1
            return [event]
        return []

    def finish(self, reason: str, counts: dict) -> list:
        delta = {"stop_reason": reason} if reason else {}
        return [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": counts}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def search_failed(self, blocks: list[dict], counts: dict) -> list:
        """Close what is open and end with the failed search's blocks (``writeTerminalResponse``)."""
        events = [] if self.started else self.start(counts["input_tokens"])
        if self.text_started or (self.thinking_started and not self.thinking_done):
            events.append(self._stop_block())
            self.index += 1
        for block in blocks:
            events += [self._block(block), self._stop_block()]
            self.index += 1
        return events + self.finish("end_turn", counts)


class Messages:
    def __init__(self, kernel):
        self.kernel = kernel

    @anthropic_errors
    def on_post(self, req, resp):
        body = read_json(req)
        request = MessagesRequest(body)
        events = inference.chat(
            self.kernel, request.native, gone=client_gone(req), relax_thinking=True
        )
        ident = generate_id("msg")
        if request.stream:
            converter = StreamConverter(ident, request.model, estimate_input_tokens(body))
            frames = (
                sse_frame(data, name) for name, data in self._stream(events, converter, request)
            )
            sse_response(resp, frames, error_envelope, self._error_event)
        else:
            json_response(resp, self._complete(events, ident, request), 200, "application/json")

    @staticmethod
    def _error_event(exc: BaseException) -> bytes:
        body = error_envelope(exc)[1]
        return sse_frame({"type": "error", "error": body["error"]}, "error")

    def _complete(self, events, ident: str, request: MessagesRequest) -> dict:
        thinking, text, calls, final = [], [], [], {}
        for event in events:
            reply = event.get("message") or {}
            thinking.append(reply.get("thinking", ""))
            text.append(reply.get("content", ""))
            calls.extend(reply.get("tool_calls") or ())
            final = event
        searched = search_call(calls) if request.web_search else None
        if searched:
            return message(
                ident, request.model, search_failure(ident, searched), "end_turn", usage(final)
            )
        content = []
        if "".join(thinking):
            content.append({"type": "thinking", "thinking": "".join(thinking)})
        if "".join(text):
            content.append({"type": "text", "text": "".join(text)})
        content += [tool_use(call) for call in calls]
        return message(
            ident,
            final.get("model", request.model),
            content,
            stop_reason(final.get("done_reason", ""), bool(calls)),
            usage(final),
        )

    def _stream(self, events, converter: StreamConverter, request: MessagesRequest):
        searched = None
        for event in events:
            calls = (event.get("message") or {}).get("tool_calls") or []
            searched = searched or (search_call(calls) if request.web_search else None)
            if searched:  # Ollama lets the generation finish while it searches
                if event.get("done"):
                    yield from converter.search_failed(
                        search_failure(converter.ident, searched), usage(event)
                    )
                continue
            yield from converter.process(event)
