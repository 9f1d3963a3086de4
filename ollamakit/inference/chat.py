"""Ollama's chat: a conversation's next assistant message, and loading or unloading."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..errors import BadRequest
from ..interfaces import Lease
from .. import rendering
from ..lib.structured import Parsed
from ..rendering import ParsedStream
from ..options import merged
from ..store import LocalModel
from . import prompting, remote
from .answer import Answer, Report, base, debug_info, metrics, parse_format, run
from .models import capabilities, check_think, find_model, require
from .requests import parse_common, parse_messages, parse_tools


def chat(
    kernel, body: dict, *, gone=None, relax_thinking: bool = False, started: int | None = None
) -> Iterator[dict]:
    """The reply objects of a native ``/api/chat`` request (``stream`` is not read: every chunk
    is yielded). Request errors are raised before the first object. ``gone()`` says whether the
    client left (``ollamakit.web.client_gone``): the work then stops. ``relax_thinking``: asking
    a model that cannot think to think drops ``think`` instead of refusing, as Ollama does for its
    Anthropic endpoint."""
    started = started or time.perf_counter_ns()
    common = parse_common(body)
    if not common.model:
        raise BadRequest("model is required")
    messages = parse_messages(body.get("messages"))
    tools = parse_tools(body)
    model = find_model(kernel, common.model)
    if not messages and common.unload_requested:
        kernel.scheduler.unload(model)
        yield _reply(common.model, "", done=True, done_reason="unload")
        return
    if remote.is_remote(model):
        yield from remote.chat(kernel, model, body, gone)
        return
    caps = capabilities(model)
    if "completion" not in caps:
        raise BadRequest(f'"{common.model}" does not support chat')
    # As in Ollama, images are no capability check: a text-only model gets their markers only.
    require(model, caps, ["tools"] if tools else [])
    asked = None if relax_thinking and "thinking" not in caps else common.think
    think = check_think(model, common.model, asked, caps)
    spec = parse_format(common.format)
    options = merged(model.params, common.options)
    lease = kernel.scheduler.acquire(model, options, common.keep_alive, gone)
    report = Report(kernel, model, "chat", started)
    yield from _chat(lease, model, common, messages, tools, think, spec, report, gone)


def _chat(lease: Lease, model: LocalModel, common, messages, tools, think, spec, report, gone):
    started = report.started
    try:
        load_ns = time.perf_counter_ns() - started
        if not messages:
            yield _reply(common.model, "", done=True, done_reason="load")
            return
        conversation = full_conversation(model, messages)
        check_images(lease, sum(len(m.get("images") or ()) for m in conversation))
        rendered = render(lease, model, conversation, tools, think, common.truncate)
        text = rendered.text
        if common.debug_render_only:
            yield {
                **_reply(common.model, "", done=False),
                "_debug_info": debug_info(text, len(rendered.images or ())),
            }
            return
        tokens = prompting.prompt_tokens(lease, text, rendered.images, gone)
        parser = prompting.output_parser(model, text, tools=tools, think=think, rendered=rendered)
        if spec is not None and thinks_before_format(model, parser, think):
            events = _think_then_format(
                lease, model, conversation, tools, think, spec, parser, tokens, common, gone, report
            )
        else:
            events = run(lease, tokens, common, Answer.build(lease, spec, parser), gone, report)
        for event in events:
            if isinstance(event, tuple):
                yield _parsed_reply(common.model, *event)
                continue
            reply = _reply(common.model, "", done=True, done_reason=event.reason)
            reply.update(metrics(event, started, load_ns))
            yield reply
    finally:
        lease.release()


def thinks_before_format(model: LocalModel, parser, think) -> bool:
    """Whether a chat with a ``format`` thinks freely first, as Ollama decides it: a model that
    can think, read by its built-in parser (unless ``think`` is false and the parser thinks),
    or by its Go template's thinking tags (which it is only when ``think`` is on). A model
    prompted through its own Jinja template is Ollama's "native" chat, which llama-server runs
    in one pass, its grammar starting after the thinking: as ``Answer.build`` holds it."""
    if parser is None or "thinking" not in capabilities(model):
        return False
    if isinstance(parser, ParsedStream):
        return not (parser.parser.has_thinking_support and think is False)
    return parser.thinking is not None and model.template is not None


def _think_then_format(
    lease, model, conversation, tools, think, spec, parser, tokens, common, gone, report
):
    """Ollama's two passes: the answer runs free until its first content; that content is
    dropped, the thinking so far (whatever this chunk held of it too) is put back into the
    conversation as the assistant's, and the model is asked again, its answer now held to the
    format from the first token. The same parser reads both passes (it is past the thinking);
    the second pass's counts are the reply's. (Ollama restarts only after some thinking and
    lets an answer that starts without any through unconstrained; here it is restarted too.)"""
    thought: list[str] = []
    first = run(lease, tokens, common, Answer(None, parser), gone, report)
    try:
        for event in first:
            if not isinstance(event, tuple) or not event[0].content:
                if isinstance(event, tuple):
                    thought.append(event[0].thinking)
                yield event
                continue
            parsed, logprobs = event
            if parsed.thinking:
                thought.append(parsed.thinking)
                yield Parsed(thinking=parsed.thinking), logprobs
            break
        else:
            return  # done without an answer: nothing to hold to the format
    finally:
        first.close()
    again = [*conversation, {"role": "assistant", "content": "", "thinking": "".join(thought)}]
    rendered = render(lease, model, again, tools, think, common.truncate)
    text = rendered.text
    if rendering.parser_name(model.config, model.template) == "harmony":
        # the rendered thinking could be continued: end it, and open the final answer
        text += "<|end|><|start|>assistant<|channel|>final<|message|>"
    tokens = prompting.prompt_tokens(lease, text, rendered.images, gone)
    answer = Answer.build(lease, spec, parser, free_thinking=False)
    yield from run(lease, tokens, common, answer, gone, report)


def check_images(lease: Lease, count: int) -> None:
    """Images reach only a model that can encode them: a model whose projector is missing or
    of a kind the engine does not run answers 400 rather than reading the text without them."""
    if count and lease.runner.vision is None:
        raise BadRequest("this model is missing data required for image input")


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


def render(lease: Lease, model: LocalModel, conversation: list[dict], tools, think, truncate: bool):
    """The ``Prompt`` a conversation becomes on the leased model (its text, the images its
    tags name, the parser that goes with it): what chat runs, and what tokenize counts."""
    return prompting.chat_prompt(
        model,
        conversation,
        lease.tokenizer,
        lease.num_ctx,
        tools=tools,
        think=think,
        truncate=truncate,
        image_tokens=prompting.image_token_count(lease.runner),
    )


def full_conversation(model, messages: list[dict]) -> list[dict]:
    """The model's SYSTEM (unless the request starts with its own), its MESSAGE history, then
    the request's messages."""
    conversation = []
    if model.system and not (messages and messages[0]["role"] == "system"):
        conversation.append({"role": "system", "content": model.system})
    conversation.extend(m for m in model.messages if isinstance(m, dict))
    conversation.extend(messages)
    return conversation
