"""``POST /api/chat``: a conversation's next assistant message, and loading or unloading."""

from __future__ import annotations

import time

from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, read_json, stream_response
from ollamakit.web.body import field
from ollamakit.options import merged
from ollamakit.lib.structured.output import Parsed

from . import prompting
from .inference import (
    base,
    check_images,
    check_think,
    concatenate,
    decode_images,
    find_model,
    format_constraint,
    metrics,
    parse_common,
    parse_format,
    parsed_events,
    require,
    run_sequence,
)

MAX_MESSAGES = 100_000
MESSAGE_TEXT_FIELDS = ("content", "thinking", "tool_name", "tool_call_id")


def parse_messages(value) -> list[dict]:
    """Request messages, checked field by field; roles are lower-cased as Ollama does."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"json: cannot unmarshal {type(value).__name__} into field messages of type []Message")
    if len(value) > MAX_MESSAGES:
        raise BadRequest("too many messages")
    messages = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest(f"json: cannot unmarshal {type(item).__name__} into field messages of type Message")
        message = {"role": field(item, "role", str, "").lower(), "content": field(item, "content", str, "")}
        for key in MESSAGE_TEXT_FIELDS[1:]:
            if item.get(key) is not None:
                message[key] = field(item, key, str, "")
        images = decode_images(item.get("images"), "images")
        if images:
            message["images"] = images
        tool_calls = item.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list) or not all(isinstance(c, dict) for c in tool_calls):
                raise BadRequest("json: cannot unmarshal tool_calls: expected an array of objects")
            message["tool_calls"] = tool_calls
        messages.append(message)
    return messages


def chat_events(kernel, body: dict, started: int | None = None, gone=None, relax_thinking: bool = False):
    """The reply objects for a chat request (the compatibility layers reach it through the
    ``run_chat`` hook). Request errors are raised before the first object. ``gone`` says
    whether the client left (``ollamakit.web.client_gone``): the work then stops.
    ``relax_thinking``: asking a model that cannot think to think drops ``think`` instead of
    refusing, as Ollama does for its Anthropic endpoint."""
    started = started or time.perf_counter_ns()
    common = parse_common(body)
    if not common.model:
        raise BadRequest("model is required")
    messages = parse_messages(body.get("messages"))
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRequest(f"json: cannot unmarshal {type(tools).__name__} into field tools of type []Tool")

    model = find_model(kernel, common.model)
    scheduler = kernel.scheduler
    if not messages and common.unload_requested:
        scheduler.unload(model)
        yield _reply(common.model, "", done=True, done_reason="unload")
        return

    caps = prompting.capabilities(model)
    if "completion" not in caps:
        raise BadRequest(f'"{common.model}" does not support chat')
    # As in Ollama, images are no capability check: a text-only model gets their markers only.
    require(model, caps, ["tools"] if tools else [])
    asked = None if relax_thinking and "thinking" not in caps else common.think
    think = check_think(model, common.model, asked, caps)
    spec = parse_format(common.format)
    options = merged(model.params, common.options)

    lease = scheduler.acquire(model, options, common.keep_alive, gone)
    try:
        load_ns = time.perf_counter_ns() - started
        if not messages:
            yield _reply(common.model, "", done=True, done_reason="load")
            return
        conversation = _conversation(model, messages)
        check_images(lease, sum(len(m.get("images") or ()) for m in conversation))
        rendered = prompting.chat_prompt(
            model, conversation, lease.tokenizer, lease.num_ctx, tools=tools or None, think=think, truncate=common.truncate,
            image_tokens=prompting.image_token_count(lease.runner),
        )
        text = rendered.text
        if common.debug_render_only:
            yield {**_reply(common.model, "", done=False), "_debug_info": {"rendered_template": text}}
            return
        tokens = prompting.prompt_tokens(lease, text, rendered.images, gone)
        parser = prompting.output_parser(model, text, tools=tools or None, think=think)
        thinking = parser.thinking if parser else None
        constraint = format_constraint(spec, lease, after=thinking.closing if thinking else None)
        for event in parsed_events(run_sequence(lease, tokens, common, constraint, gone), parser):
            if isinstance(event, tuple):
                yield _parsed_reply(common.model, *event)
                continue
            reply = _reply(common.model, "", done=True, done_reason=event.reason)
            reply.update(metrics(event, started, load_ns))
            yield reply
    finally:
        lease.release()


def _reply(model_name: str, content: str, **fields) -> dict:
    return {**base(model_name), "message": {"role": "assistant", "content": content}, **fields}


def _parsed_reply(model_name: str, parsed: Parsed, logprobs: list) -> dict:
    """A streamed chunk: the answer's text, and its thinking and tool calls when there are any."""
    reply = _reply(model_name, parsed.content, done=False)
    if parsed.thinking:
        reply["message"]["thinking"] = parsed.thinking
    if parsed.tool_calls:
        reply["message"]["tool_calls"] = parsed.tool_calls
    if logprobs:
        reply["logprobs"] = logprobs
    return reply


def _conversation(model, messages: list[dict]) -> list[dict]:
    """The model's SYSTEM (unless the request starts with its own), its MESSAGE history, then
    the request's messages."""
    conversation = []
    if model.system and not (messages and messages[0]["role"] == "system"):
        conversation.append({"role": "system", "content": model.system})
    conversation.extend(m for m in model.messages if isinstance(m, dict))
    conversation.extend(messages)
    return conversation


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
        events = chat_events(self.kernel, body, started, gone=client_gone(req))
        stream_response(resp, events, stream, final=combine)
