"""Ollama's generate: a completion, raw or through the model's template, and loading or
unloading a model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import BadRequest
from ..interfaces import Lease
from ..lib.structured import Parsed
from ..lib.templates import Template
from ..options import merged
from ..store import LocalModel
from ..web.body import field
from . import prompting, remote
from .answer import Answer, Report, base, debug_info, metrics, parse_format, run
from .chat import check_images
from .models import capabilities, check_think, find_model, require
from .requests import Common, decode_images, parse_common, parse_context


def generate(kernel, body: dict, *, gone=None, started: int | None = None) -> Iterator[dict]:
    """The reply objects of a native ``/api/generate`` request, as ``chat``'s are."""
    started = started or time.perf_counter_ns()
    common = parse_common(body)
    prompt = field(body, "prompt", str, "")
    suffix = field(body, "suffix", str, "")
    system = field(body, "system", str, "")
    template = field(body, "template", str, "")
    raw = field(body, "raw", bool, False)
    context = parse_context(body)
    images = decode_images(body.get("images"))
    if raw and (template or system or context):
        raise BadRequest("raw mode does not support template, system, or context")

    model = find_model(kernel, common.model)
    if remote.is_remote(model):
        yield from remote.generate(kernel, model, body, gone)
        return
    if prompt == "" and common.unload_requested:
        kernel.scheduler.unload(model)
        yield {**base(common.model), "response": "", "done": True, "done_reason": "unload"}
        return

    override = prompting.request_template(template) if template else None
    caps = capabilities(model)
    if "completion" not in caps:
        raise BadRequest(f'"{common.model}" does not support generate')
    # As in Ollama, images are no capability check: a text-only model gets their markers only.
    require(model, caps, ["insert"] if suffix else [])
    think = check_think(model, common.model, common.think, caps)
    spec = parse_format(common.format)
    options = merged(model.params, common.options)
    lease = kernel.scheduler.acquire(model, options, common.keep_alive, gone)
    request = _Generate(prompt, suffix, system, override, raw, context, images, think)
    yield from _generate(
        lease, model, common, request, spec, Report(kernel, model, "generate", started), gone
    )


@dataclass
class _Generate:
    """The fields of a generate request beyond ``Common``."""

    prompt: str
    suffix: str
    system: str
    template: Template | None  # the request's own, parsed
    raw: bool
    context: list[int]
    images: list[bytes]
    think: bool | str | None


def _generate(
    lease: Lease, model: LocalModel, common: Common, request: _Generate, spec, report: Report, gone
):
    started = report.started
    try:
        load_ns = time.perf_counter_ns() - started
        if request.prompt == "":  # a suffix alone is still a load, as in Ollama
            yield {**base(common.model), "response": "", "done": True, "done_reason": "load"}
            return
        check_images(lease, len(request.images))
        tagged = request.images  # the images in [img-N] order
        if request.raw:
            text = request.prompt
        else:
            rendered = prompting.generate_prompt(
                model,
                request.prompt,
                lease.tokenizer,
                lease.num_ctx,
                system=request.system,
                suffix=request.suffix,
                template=request.template,
                images=request.images,
                think=request.think,
                with_history=not request.context,
                image_tokens=prompting.image_token_count(lease.runner),
                truncate=common.truncate,
            )
            text, tagged = rendered.text, rendered.images
        if request.context:
            prompting.check_context(request.context, lease.tokenizer, lease.runner.vision)
            text = lease.tokenizer.decode(request.context) + text
        if common.debug_render_only:
            yield {
                **base(common.model),
                "response": "",
                "done": False,
                "_debug_info": debug_info(text, len(request.images or ())),
            }
            return
        tokens = prompting.prompt_tokens(lease, text, tagged, gone)
        parser = (
            None
            if request.raw
            else prompting.output_parser(
                model, text, think=request.think, template=request.template, rendered=rendered
            )
        )
        # Ollama's generate hands the format to the runner with the prompt, so the constraint
        # holds from the first token even for a model that would think first (its chat asks
        # again after the thinking instead): the thinking a parser expects never comes.
        answer = Answer.build(lease, spec, parser, free_thinking=False)
        for event in run(lease, tokens, common, answer, gone, report):
            if isinstance(event, tuple):
                yield _parsed_reply(base(common.model), *event)
                continue
            reply = base(common.model)
            reply.update(response="", done=True, done_reason=event.reason)
            reply.update(metrics(event, started, load_ns))
            if not request.raw:
                reply["context"] = prompting.context_tokens(event.context, text, lease.tokenizer)
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
