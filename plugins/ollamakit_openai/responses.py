"""``POST /v1/responses``: OpenAI's Responses API, stateless, run as a native chat request.

The reply and the event stream follow Ollama's ``ToResponse`` and ``ResponsesStreamConverter``
(``openai/responses.go``) and ``ResponsesMiddleware`` (``middleware/openai.go``): the same
objects, the same event names and order, one ``sequence_number`` across a stream.

The built-in ``web_search`` tool is offered to the model as a function, as in Ollama. Ollama
runs the searches the model asks for through ollama.com; ollamakit has no such service, so a
call to it fails the response as Ollama's does when its search is refused
(``ollamakit.cloud.refusal``).
"""

from __future__ import annotations

import json
import random
import time

from ollamakit import cloud, inference
from ollamakit.errors import BadRequest, OllamaError
from ollamakit.web import client_gone, json_response, parse_json, read_json
from ollamakit.web.body import MAX_JSON_BODY

from .envelope import error_envelope, openai_errors, start_stream
from .responses_request import ResponsesRequest


# Ollama's bounds on a zstd body (middleware/openai.go): 20 MiB decompressed, an 8 MiB window.
MAX_DECOMPRESSED = 20 << 20
MAX_ZSTD_WINDOW = 8 << 20


def read_body(req) -> dict:
    """The request as JSON; a ``Content-Encoding: zstd`` body (Codex sends them) is decompressed
    first, within Ollama's bounds."""
    if (req.get_header("Content-Encoding") or "").strip().lower() != "zstd":
        return read_json(req)
    import zstandard

    compressed = req.bounded_stream.read(MAX_JSON_BODY + 1)
    if len(compressed) > MAX_JSON_BODY:
        raise BadRequest("request body too large")
    raw = bytearray()
    try:
        reader = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW).stream_reader(
            compressed
        )
        while len(raw) <= MAX_DECOMPRESSED:
            piece = reader.read(MAX_DECOMPRESSED + 1 - len(raw))
            if not piece:
                break
            raw += piece
    except zstandard.ZstdError:
        raise BadRequest("failed to decompress zstd body") from None
    if len(raw) > MAX_DECOMPRESSED:
        raise BadRequest("http: request body too large")
    req.context.raw_body = bytes(raw)  # what OLLAMA_DEBUG_LOG_REQUESTS logs: the request as decoded
    return parse_json(req.context.raw_body)


def _arguments(call: dict) -> str:
    return json.dumps(
        call["function"].get("arguments") or {}, ensure_ascii=False, separators=(",", ":")
    )


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ident: str, text: str, status: str = "completed") -> dict:
    return {
        "id": ident,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)] if status == "completed" else [],
    }


def _usage(final: dict) -> dict:
    prompt, output = int(final.get("prompt_eval_count", 0)), int(final.get("eval_count", 0))
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _is_web_search(call: dict) -> bool:
    return call.get("function", {}).get("name") == "web_search"


class Reply:
    """What every response object of one request shares: its ids and the echoed settings."""

    def __init__(self, request: ResponsesRequest):
        self.request = request
        self.response_id = f"resp_{random.randrange(999999)}"
        self.item_id = f"msg_{random.randrange(999999)}"

    def response(self, status: str, output: list, usage, streamed: bool) -> dict:
        r = self.request
        text_format = {"type": "text"}
        if r.text_format is not None:
            text_format = {
                k: v
                for k, v in r.text_format.items()
                if k in ("type", "name", "schema", "strict")
                and (v not in (None, "") or k == "type")
            }
        reasoning = None
        if r.effort or r.summary:
            reasoning = (
                {"effort": r.effort or None, "summary": r.summary or None}
                if streamed
                else {k: v for k, v in (("effort", r.effort), ("summary", r.summary)) if v}
            )
        tools = [
            {
                "type": t.get("type"),
                "name": t.get("name"),
                "description": t.get("description"),
                "strict": t.get("strict"),
                "parameters": t.get("parameters"),
                **({"tools": t["tools"]} if t.get("tools") and not streamed else {}),
            }
            for t in r.tools
        ]
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": int(time.time()),
            "completed_at": None,
            "status": status,
            "incomplete_details": None,
            "model": r.model,
            "previous_response_id": None,
            "instructions": r.instructions or None,
            "output": output,
            "error": None,
            "tools": tools,
            "tool_choice": "auto",
            "truncation": r.truncation or "disabled",
            "parallel_tool_calls": True,
            "text": {"format": text_format},
            "top_p": 1.0 if r.top_p is None else r.top_p,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "top_logprobs": 0,
            "temperature": 1.0 if r.temperature is None else r.temperature,
            "reasoning": reasoning,
            "usage": usage,
            "max_output_tokens": r.max_output_tokens,
            "max_tool_calls": None,
            "store": False,
            "background": r.background,
            "service_tier": "default",
            "metadata": {},
            "safety_identifier": None,
            "prompt_cache_key": None,
        }

    def complete(self, final: dict, thinking: str, content: str, calls: list[dict]) -> dict:
        """The whole reply at once (``ToResponse``)."""
        output = []
        if thinking:
            output.append(
                {
                    "id": f"rs_{self.response_id}",
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": thinking}],
                    "encrypted_content": thinking,
                }
            )
        if calls:
            output.extend(
                {
                    "id": f"fc_{self.response_id}_{i}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.get("id", ""),
                    "name": call["function"]["name"],
                    "arguments": _arguments(call),
                }
                for i, call in enumerate(calls)
            )
        else:
            output.append(_message_item(self.item_id, content))
        response = self.response("completed", output, _usage(final), streamed=False)
        response["completed_at"] = int(time.time())
        return response


class StreamConverter:
    """Native chat chunks to Responses events: ``process`` returns the ``(name, data)`` events
    for one chunk (Ollama's ``ResponsesStreamConverter.Process``)."""

    def __init__(self, reply: Reply):
        self.reply = reply
        self.sequence = 0
        self.first = True
        self.output_index = 0
        self.content_started = False
        self.calls_sent = False
        self.text = ""
        self.thinking = ""
        self.reasoning_id = ""
        self.completed: list[dict] = []

    def event(self, name: str, **data) -> tuple[str, dict]:
        data = {"type": name, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return name, data

    def process(self, chunk: dict) -> list:
        message = chunk.get("message") or {}
        events = []
        if self.first:
            self.first = False
            for name in ("response.created", "response.in_progress"):
                events.append(
                    self.event(
                        name, response=self.reply.response("in_progress", [], None, streamed=True)
                    )
                )
        if message.get("thinking"):
            events += self._thinking(message["thinking"])
        if message.get("tool_calls"):
            events += self._finish_reasoning() + self._function_calls(message["tool_calls"])
            self.calls_sent = True
        elif not self.calls_sent and message.get("content"):
            events += self._text(message["content"])
        if chunk.get("done"):
            events += self._completion(chunk)
        return events

    def failed(self, message: str, code: str, final: dict) -> list:
        """A terminal failure, as Ollama ends a stream whose web search was refused."""
        events = self.process({}) if self.first else []
        usage = _usage(final)
        response = {
            "id": self.reply.response_id,
            "object": "response",
            "status": "failed",
            "model": self.reply.request.model,
            "output": [],
            "error": {"code": code, "message": message},
            "usage": {k: usage[k] for k in ("input_tokens", "output_tokens", "total_tokens")},
        }
        return events + [self.event("response.failed", response=response)]

    def _thinking(self, thinking: str) -> list:
        events = []
        if not self.reasoning_id:
            self.reasoning_id = f"rs_{random.randrange(999999)}"
            events.append(
                self.event(
                    "response.output_item.added",
                    output_index=self.output_index,
                    item={"id": self.reasoning_id, "type": "reasoning", "summary": []},
                )
            )
        self.thinking += thinking
        events.append(
            self.event(
                "response.reasoning_summary_text.delta",
                item_id=self.reasoning_id,
                output_index=self.output_index,
                summary_index=0,
                delta=thinking,
            )
        )
        return events

    def _finish_reasoning(self) -> list:
        if not self.reasoning_id:
            return []
        ident, text, index = self.reasoning_id, self.thinking, self.output_index
        item = {
            "id": ident,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": text,
        }
        self.completed.append(item)
        self.reasoning_id, self.thinking = "", ""
        self.output_index += 1
        return [
            self.event(
                "response.reasoning_summary_text.done",
                item_id=ident,
                output_index=index,
                summary_index=0,
                text=text,
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _function_calls(self, calls: list[dict]) -> list:
        events = []
        for i, call in enumerate(calls):
            index, ident, arguments = (
                self.output_index + i,
                f"fc_{random.randrange(999999)}_{i}",
                _arguments(call),
            )
            item = {
                "id": ident,
                "type": "function_call",
                "status": "completed",
                "call_id": call.get("id", ""),
                "name": call["function"]["name"],
                "arguments": arguments,
            }
            self.completed.append(item)
            events += [
                self.event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                ),
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=ident,
                    output_index=index,
                    delta=arguments,
                ),
                self.event(
                    "response.function_call_arguments.done",
                    item_id=ident,
                    output_index=index,
                    arguments=arguments,
                ),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        self.output_index += len(calls)
        return events

    def _text(self, text: str) -> list:
        events = self._finish_reasoning()
        ident = self.reply.item_id
        if not self.content_started:
            self.content_started = True
            events += [
                self.event(
                    "response.output_item.added",
                    output_index=self.output_index,
                    item=_message_item(ident, "", status="in_progress"),
                ),
                self.event(
                    "response.content_part.added",
                    item_id=ident,
                    output_index=self.output_index,
                    content_index=0,
                    part=_text_part(""),
                ),
            ]
        self.text += text
        events.append(
            self.event(
                "response.output_text.delta",
                item_id=ident,
                output_index=self.output_index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _completion(self, final: dict) -> list:
        events = self._finish_reasoning()
        ident, index = self.reply.item_id, self.output_index
        output = list(self.completed)
        if self.content_started:
            output.append(_message_item(ident, self.text))
        if not self.calls_sent and self.content_started:
            events += [
                self.event(
                    "response.output_text.done",
                    item_id=ident,
                    output_index=index,
                    content_index=0,
                    text=self.text,
                    logprobs=[],
                ),
                self.event(
                    "response.content_part.done",
                    item_id=ident,
                    output_index=index,
                    content_index=0,
                    part=_text_part(self.text),
                ),
                self.event(
                    "response.output_item.done",
                    output_index=index,
                    item=_message_item(ident, self.text),
                ),
            ]
        response = self.reply.response("completed", output, _usage(final), streamed=True)
        response["completed_at"] = int(time.time())
        return events + [self.event("response.completed", response=response)]


def search_refused(settings) -> tuple[OllamaError, str]:
    """The error a web_search call meets, and its Responses error code."""
    refusal = cloud.refusal(settings, cloud.WEB_SEARCH)
    return refusal, "authentication_error" if refusal.status == 401 else "api_error"


class Responses:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        request = ResponsesRequest(read_body(req))
        events = inference.chat(self.kernel, request.native(), gone=client_gone(req))
        reply = Reply(request)
        if request.stream:
            start_stream(resp, self._stream(events, reply), events=True)
        else:
            json_response(resp, self._complete(events, reply), 200, "application/json")

    def _complete(self, events, reply: Reply) -> dict:
        thinking, content, calls, final = [], [], [], {}
        for event in events:
            message = event.get("message") or {}
            thinking.append(message.get("thinking", ""))
            content.append(message.get("content", ""))
            calls.extend(message.get("tool_calls") or ())
            final = event
        if reply.request.web_search and any(_is_web_search(call) for call in calls):
            raise search_refused(self.kernel.settings)[0]
        return reply.complete(final, "".join(thinking), "".join(content), calls)

    def _stream(self, events, reply: Reply):
        converter, search = StreamConverter(reply), reply.request.web_search
        searching, final = False, {}
        try:
            for event in events:
                final = event
                message = event.get("message") or {}
                calls = message.get("tool_calls") or []
                if search and any(_is_web_search(call) for call in calls):
                    searching = True  # Ollama would search now, then carry on with the results
                    event = {**event, "message": {**message, "tool_calls": []}}
                if searching and event.get("done"):
                    error, code = search_refused(self.kernel.settings)
                    yield from converter.failed(error.message, code, event)
                    return
                yield from converter.process(event)
        except Exception as exc:
            if converter.first:
                raise  # nothing sent yet: the error is the HTTP reply
            yield from converter.failed(
                error_envelope(exc)[1]["error"]["message"], "api_error", final
            )
