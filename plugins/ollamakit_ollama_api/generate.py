"""``POST /api/generate``: completion, and loading or unloading a model."""

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

MAX_CONTEXT_TOKENS = 1 << 22


def _context(body: dict) -> list[int]:
    value = body.get("context")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_CONTEXT_TOKENS:
        raise BadRequest("json: cannot unmarshal context: expected an array of integers")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        raise BadRequest("json: cannot unmarshal context: expected an array of integers")
    return value


def generate_events(kernel, body: dict, started: int | None = None, gone=None):
    """The reply objects for a generate request. Request errors are raised before the first
    object, so a streamed reply still gets the right status. ``gone`` says whether the client
    left (``ollamakit.web.client_gone``): the work then stops."""
    started = started or time.perf_counter_ns()
    common = parse_common(body)
    prompt = field(body, "prompt", str, "")
    suffix = field(body, "suffix", str, "")
    system = field(body, "system", str, "")
    template = field(body, "template", str, "")
    raw = field(body, "raw", bool, False)
    context = _context(body)
    images = decode_images(body.get("images"))
    if raw and (template or system or context):
        raise BadRequest("raw mode does not support template, system, or context")

    model = find_model(kernel, common.model)
    scheduler = kernel.scheduler
    if prompt == "" and common.unload_requested:
        scheduler.unload(model)
        yield {**base(common.model), "response": "", "done": True, "done_reason": "unload"}
        return

    override = prompting.request_template(template) if template else None
    caps = prompting.capabilities(model)
    if "completion" not in caps:
        raise BadRequest(f'"{common.model}" does not support generate')
    # As in Ollama, images are no capability check: a text-only model gets their markers only.
    require(model, caps, ["insert"] if suffix else [])
    think = check_think(model, common.model, common.think, caps)
    spec = parse_format(common.format)
    options = merged(model.params, common.options)

    lease = scheduler.acquire(model, options, common.keep_alive, gone)
    try:
        load_ns = time.perf_counter_ns() - started
        if prompt == "":  # a suffix alone is still a load, as in Ollama
            yield {**base(common.model), "response": "", "done": True, "done_reason": "load"}
            return
        check_images(lease, len(images))
        tagged = images  # the images in [img-N] order
        if raw:
            text = prompt
        else:
            rendered = prompting.generate_prompt(
                model, prompt, lease.tokenizer, lease.num_ctx, system=system, suffix=suffix, template=override,
                images=images, think=think, with_history=not context,
                image_tokens=prompting.image_token_count(lease.runner),
            )
            text, tagged = rendered.text, rendered.images
        if context:
            text = lease.tokenizer.decode(context) + text
        if common.debug_render_only:
            yield {**base(common.model), "response": "", "done": False, "_debug_info": {"rendered_template": text}}
            return
        tokens = prompting.prompt_tokens(lease, text, tagged, gone)
        parser = None if raw else prompting.output_parser(model, text, think=think, template=override)
        thinking = parser.thinking if parser else None
        constraint = format_constraint(spec, lease, after=thinking.closing if thinking else None)
        for event in parsed_events(run_sequence(lease, tokens, common, constraint, gone), parser):
            if isinstance(event, tuple):
                yield _parsed_reply(base(common.model), *event)
                continue
            reply = base(common.model)
            reply.update(response="", done=True, done_reason=event.reason)
            reply.update(metrics(event, started, load_ns))
            if not raw:
                reply["context"] = event.context
            yield reply
    finally:
        lease.release()


def _parsed_reply(reply: dict, parsed: Parsed, logprobs: list) -> dict:
    reply.update(response=parsed.content, done=False)
    if parsed.thinking:
        reply["thinking"] = parsed.thinking
    if logprobs:
        reply["logprobs"] = logprobs
    return reply


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
        events = generate_events(self.kernel, body, started, gone=client_gone(req))
        stream_response(resp, events, stream, final=combine)
