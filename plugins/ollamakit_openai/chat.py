"""``POST /v1/chat/completions``: OpenAI chat, run by the native chat handler."""

from __future__ import annotations

import json

from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, json_response, read_json
from ollamakit_ollama_api.chat import chat_events

from .envelope import (FINGERPRINT, completion_id, finish_reason, include_usage, now, openai_errors, sampling_options,
                       start_stream, typed, usage)

IMAGE_PREFIXES = ("data:image/jpeg;base64,", "data:image/jpg;base64,", "data:image/png;base64,",
                  "data:image/webp;base64,", "data:;base64,")
EFFORTS = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "max": "max",
           "xhigh": "max", "ultra": "max"}


def _image(part: dict) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequest("invalid image input")
    if url.startswith(("http://", "https://")):
        raise BadRequest("image URLs are not currently supported, please use base64 encoded data instead")
    for prefix in IMAGE_PREFIXES:
        if url.startswith(prefix):
            return url[len(prefix) :]
    raise BadRequest("invalid image input")


def _parts(role: str, content: list) -> list[dict]:
    """An array of content parts: each part becomes its own native message."""
    messages = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            messages.append({"role": role, "content": part["text"]})
        elif kind == "image_url":
            messages.append({"role": role, "content": "", "images": [_image(part)]})
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            messages.append({"role": role, "content": "", "images": [part["input_audio"].get("data", "")]})
        else:
            raise BadRequest("invalid message content type")
    return messages


def _tool_calls(calls) -> list[dict]:
    if not isinstance(calls, list):
        raise BadRequest("invalid tool_calls: expected an array")
    native = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest("invalid tool call: function name is required")
        arguments = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                raise BadRequest(f"invalid tool call arguments: {function.get('arguments')!r}") from None
        if not isinstance(arguments, dict):
            raise BadRequest("invalid tool call arguments: expected a JSON object")
        entry = {"function": {"index": index, "name": function["name"], "arguments": arguments}}
        if isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        native.append(entry)
    return native


def native_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("[] is too short - 'messages'")
    native: list[dict] = []
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest("invalid message: role is required")
        role, content = message["role"], message.get("content")
        if isinstance(content, list):
            converted = _parts(role, content)
        elif content is None or isinstance(content, str):
            converted = [{"role": role, "content": content or ""}]
        else:
            raise BadRequest("invalid message content type")
        last = converted[-1] if converted else {"role": role, "content": ""}
        if not converted:
            converted.append(last)
        reasoning = message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            last["thinking"] = reasoning
        if message.get("tool_calls"):
            last["tool_calls"] = _tool_calls(message["tool_calls"])
            for call in last["tool_calls"]:
                if "id" in call:
                    tool_names[call["id"]] = call["function"]["name"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("name") or (tool_names.get(call_id) if isinstance(call_id, str) else None)
            if isinstance(name, str) and name:
                last["tool_name"] = name
            if isinstance(call_id, str):
                last["tool_call_id"] = call_id
        native.extend(converted)
    return native


def response_format(value):
    """``response_format`` as the native ``format``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("invalid response_format: expected an object")
    kind = str(value.get("type", "")).lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest("invalid response_format: json_schema.schema must be an object")
        return schema
    return None  # "text"


def reasoning_effort(body: dict):
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise BadRequest(f'invalid reasoning value: \'{effort}\' (must be "minimal", "low", "medium", "high", '
                         f'"xhigh", "max", or "none")')
    return EFFORTS[effort]


def native_request(body: dict) -> dict:
    model = typed(body, "model", str, "a string") or ""
    native = {
        "model": model,
        "messages": native_messages(body.get("messages")),
        "options": sampling_options(body),
        "stream": True,
    }
    fmt = response_format(body.get("response_format"))
    if fmt is not None:
        native["format"] = fmt
    if body.get("tools"):
        native["tools"] = body["tools"]
    think = reasoning_effort(body)
    if think is not None:
        native["think"] = think
    for key in ("logprobs", "top_logprobs", "_debug_render_only"):
        if body.get(key) is not None:
            native[key] = body[key]
    return native


def openai_tool_calls(calls: list[dict]) -> list[dict]:
    return [
        {
            "id": call.get("id", ""),
            "index": call["function"].get("index", i),
            "type": "function",
            "function": {"name": call["function"]["name"],
                         "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)},
        }
        for i, call in enumerate(calls)
    ]


class ChatCompletions:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        stream = typed(body, "stream", bool, "a boolean") or False
        native = native_request(body)
        events = chat_events(self.kernel, native, gone=client_gone(req))
        if stream:
            start_stream(resp, self._chunks(events, body))
        else:
            json_response(resp, self._completion(events, body), 200, "application/json")

    def _completion(self, events, body: dict) -> dict:
        content, reasoning, calls, logprobs, final = [], [], [], [], {}
        for event in events:
            message = event.get("message") or {}
            content.append(message.get("content", ""))
            reasoning.append(message.get("thinking", ""))
            calls.extend(message.get("tool_calls") or ())
            logprobs.extend(event.get("logprobs") or ())
            if event.get("done"):
                final = event
        message = {"role": "assistant", "content": "".join(content)}
        if "".join(reasoning):
            message["reasoning"] = "".join(reasoning)
        if calls:
            message["tool_calls"] = openai_tool_calls(calls)
        reason = finish_reason(final.get("done_reason", ""), bool(calls))
        choice = {"index": 0, "message": message, "finish_reason": reason}
        if logprobs:
            choice["logprobs"] = {"content": logprobs}
        return {
            "id": completion_id("chatcmpl"),
            "object": "chat.completion",
            "created": now(),
            "model": body.get("model", ""),
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": usage(final),
        }

    def _chunks(self, events, body: dict):
        ident, created, model = completion_id("chatcmpl"), now(), body.get("model", "")

        def chunk(delta: dict, finish=None, logprobs=None) -> dict:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if logprobs:
                choice["logprobs"] = {"content": logprobs}
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": FINGERPRINT, "choices": [choice]}

        had_calls = False
        for event in events:
            message = event.get("message") or {}
            if event.get("done"):
                yield chunk({}, finish_reason(event.get("done_reason", ""), had_calls))
                if include_usage(body):
                    final = chunk({})
                    final["choices"], final["usage"] = [], usage(event)
                    yield final
                return
            logprobs = event.get("logprobs")
            if message.get("thinking"):  # reasoning and content never share a chunk
                yield chunk({"role": "assistant", "content": "", "reasoning": message["thinking"]})
            delta = {"role": "assistant", "content": message.get("content", "")}
            if message.get("tool_calls"):
                had_calls = True
                delta["tool_calls"] = openai_tool_calls(message["tool_calls"])
            if delta["content"] or "tool_calls" in delta or logprobs or not message.get("thinking"):
                yield chunk(delta, logprobs=logprobs)
