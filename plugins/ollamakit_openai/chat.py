"""``POST /v1/chat/completions``: OpenAI chat, run as a native chat request (Ollama's
``FromChatRequest``, ``ToChatCompletion``, ``ToStreamChunks`` and ``FinishChunk``)."""

from __future__ import annotations

import binascii
import json

from ollamakit import inference
from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, json_response, read_json

from .envelope import (
    FINGERPRINT,
    completion_id,
    go_type,
    include_usage,
    now,
    openai_errors,
    sampling_options,
    start_stream,
    typed,
    usage,
)

IMAGE_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
)
EFFORTS = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}


def _base64(data: str, error: str) -> str:
    """``data`` checked as standard base64 (the native request carries it as it is)."""
    try:
        binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadRequest(error) from None
    return data


def image_data(url) -> str:
    """A ``data:`` URL's base64 payload; web URLs and other media types are refused."""
    if not isinstance(url, str):
        raise BadRequest("invalid message format")
    if url.startswith(("http://", "https://")):
        raise BadRequest(
            "image URLs are not currently supported, please use base64 encoded data instead"
        )
    if url.startswith("data:;base64,"):  # an unadorned payload, as /api/chat takes
        return _base64(url[len("data:;base64,") :], "invalid image input")
    for prefix in IMAGE_PREFIXES:
        if url.startswith(prefix):
            return _base64(url[len(prefix) :], "invalid image input")
    raise BadRequest("invalid image input")


def _part(role: str, part) -> dict:
    """One content part as its own native message."""
    if not isinstance(part, dict):
        raise BadRequest("invalid message format")
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise BadRequest("invalid message format")
        return {"role": role, "content": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        return {
            "role": role,
            "content": "",
            "images": [image_data(image.get("url") if isinstance(image, dict) else image)],
        }
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict):
            raise BadRequest("invalid input_audio format")
        if not isinstance(audio.get("data"), str):
            raise BadRequest("invalid input_audio format: missing data")
        return {
            "role": role,
            "content": "",
            "images": [_base64(audio["data"], "invalid input_audio base64 data")],
        }
    raise BadRequest("invalid message format")


def native_tool_calls(calls) -> list[dict]:
    """OpenAI tool calls (arguments as a JSON string) as native ones (arguments an object)."""
    if not isinstance(calls, list):
        raise BadRequest("invalid tool calls: expected an array")
    native = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise BadRequest("invalid tool call arguments")
        try:
            arguments = json.loads(function.get("arguments"))
        except (TypeError, ValueError):
            raise BadRequest("invalid tool call arguments") from None
        if arguments is not None and not isinstance(arguments, dict):
            raise BadRequest("invalid tool call arguments")
        name = function.get("name")
        native.append(
            {
                "id": call.get("id") if isinstance(call.get("id"), str) else "",
                "function": {
                    "name": name if isinstance(name, str) else "",
                    "arguments": arguments or {},
                },
            }
        )
    return native


def _call_names(messages: list) -> dict:
    """Tool call id → function name over the whole conversation; the last call with an id wins,
    as in Ollama (which looks for a tool result's call from the end)."""
    names = {}
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls if isinstance(calls, list) else ():
            if (
                isinstance(call, dict)
                and isinstance(call.get("id"), str)
                and isinstance(call.get("function"), dict)
            ):
                name = call["function"].get("name")
                names[call["id"]] = name if isinstance(name, str) else ""
    return names


def native_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("[] is too short - 'messages'")
    native: list[dict] = []
    call_names = _call_names(messages)
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("invalid message format")
        role = typed(message, "role", str, "a string") or ""
        content = message.get("content")
        reasoning = typed(message, "reasoning", str, "a string") or ""
        call_id = typed(message, "tool_call_id", str, "a string") or ""
        calls = message.get("tool_calls")
        tool_name = ""
        if role.lower() == "tool":
            tool_name = typed(message, "name", str, "a string") or (
                call_names.get(call_id, "") if call_id else ""
            )
        extra = {"thinking": reasoning, "tool_call_id": call_id}
        if isinstance(content, str):
            native.append(
                {
                    "role": role,
                    "content": content,
                    "tool_calls": native_tool_calls(calls or []),
                    "tool_name": tool_name,
                    **extra,
                }
            )
        elif isinstance(content, list):
            native.extend(_part(role, part) for part in content)
            if native and calls:  # the calls go on the last message the parts made
                native[-1].update(tool_calls=native_tool_calls(calls), tool_name=tool_name, **extra)
        elif calls is None:  # content may be left out only beside tool calls
            raise BadRequest(f"invalid message content type: {go_type(content)}")
        else:
            native.append(
                {"role": role, "content": "", "tool_calls": native_tool_calls(calls), **extra}
            )
    return [{k: v for k, v in m.items() if v or k in ("role", "content")} for m in native]


def response_format(value):
    """``response_format`` as the native ``format`` (None: free text)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("invalid type for 'response_format': expected an object")
    kind = str(value.get("type", "")).strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and isinstance(value.get("json_schema"), dict):
        return value["json_schema"].get("schema")
    return None


def think_from_effort(effort):
    """An OpenAI reasoning effort as the native ``think`` (None: the model's default)."""
    if effort is None or effort == "":
        return None
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise BadRequest(
            f'invalid reasoning value: {json.dumps(effort)} (must be "minimal", "low", "medium", '
            '"high", "xhigh", "ultra", "max", or "none")'
        )
    return EFFORTS[effort]


def reasoning_effort(body: dict):
    """``reasoning.effort`` wins over ``reasoning_effort`` whenever ``reasoning`` is given."""
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise BadRequest("invalid type for 'reasoning': expected an object")
        return think_from_effort(reasoning.get("effort"))
    return think_from_effort(body.get("reasoning_effort"))


def chat_stop(body: dict) -> list[str] | None:
    """``stop`` as a list: a string alone, or the strings of an array (others are dropped)."""
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str)]
    return None


def native_request(body: dict) -> dict:
    native = {
        "model": typed(body, "model", str, "a string") or "",
        "messages": native_messages(body.get("messages")),
        "options": sampling_options(body, stop=chat_stop(body)),
    }
    fmt = response_format(body.get("response_format"))
    if fmt is not None:
        native["format"] = fmt
    if body.get("tools"):
        native["tools"] = body["tools"]
    think = reasoning_effort(body)
    if think is not None:
        native["think"] = think
    native["logprobs"] = body.get("logprobs") is True
    top_logprobs = typed(body, "top_logprobs", int, "an integer")
    if top_logprobs:
        native["top_logprobs"] = top_logprobs
    if body.get("_debug_render_only") is True:
        native["_debug_render_only"] = True
    return native


def openai_tool_calls(calls: list[dict]) -> list[dict]:
    return [
        {
            "id": call.get("id", ""),
            "index": call["function"].get("index", 0),
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": json.dumps(
                    call["function"].get("arguments") or {},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ),
            },
        }
        for call in calls
    ]


def finish_reason(done_reason: str, has_calls: bool):
    """Ollama's mapping: only ``stop`` becomes ``tool_calls``; an empty reason is null."""
    if done_reason == "stop" and has_calls:
        return "tool_calls"
    return done_reason or None


class ChatCompletions:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        body = read_json(req)
        stream = typed(body, "stream", bool, "a boolean") or False
        native = native_request(body)
        events = inference.chat(self.kernel, native, gone=client_gone(req))
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
            final = event
        message = {"role": "assistant", "content": "".join(content)}
        if "".join(reasoning):
            message["reasoning"] = "".join(reasoning)
        if calls:
            message["tool_calls"] = openai_tool_calls(calls)
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(final.get("done_reason", ""), bool(calls)),
        }
        if logprobs:
            choice["logprobs"] = {"content": logprobs}
        reply = {
            "id": completion_id("chatcmpl"),
            "object": "chat.completion",
            "created": now(),
            "model": final.get("model", body.get("model", "")),
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": usage(final),
        }
        if "_debug_info" in final:
            reply["_debug_info"] = final["_debug_info"]
        return reply

    def _chunks(self, events, body: dict):
        ident, created = completion_id("chatcmpl"), now()
        first, calls_sent = True, False

        def chunk(event: dict, delta: dict, finish=None, logprobs=None) -> dict:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if logprobs:
                choice["logprobs"] = {"content": logprobs}
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": event.get("model", ""),
                "system_fingerprint": FINGERPRINT,
                "choices": [choice],
            }

        for event in events:
            message = event.get("message") or {}
            thinking, text = message.get("thinking", ""), message.get("content", "")
            calls = openai_tool_calls(message["tool_calls"]) if message.get("tool_calls") else None
            logprobs = event.get("logprobs")
            trailer = (
                event.get("done") and not first and not (thinking or text or calls or logprobs)
            )
            if not trailer:
                role = {"role": "assistant"} if first else {}
                if thinking and (text or calls):  # reasoning goes alone, then the rest
                    yield chunk(event, {**role, "reasoning": thinking}, logprobs=logprobs)
                    yield chunk(
                        event, {"content": text, **({"tool_calls": calls} if calls else {})}
                    )
                else:
                    delta = {**role, "content": text}
                    if thinking:
                        delta["reasoning"] = thinking
                    if calls:
                        delta["tool_calls"] = calls
                    yield chunk(event, delta, logprobs=logprobs)
                first, calls_sent = False, calls_sent or bool(calls)
            if event.get("done"):
                reason = event.get("done_reason") or "stop"
                finish = chunk(
                    event, {}, "tool_calls" if reason == "stop" and calls_sent else reason
                )
                yield finish
                if include_usage(body):
                    yield {**finish, "choices": [], "usage": usage(event)}
                return
