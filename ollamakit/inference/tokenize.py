"""Text to the engine's token ids and back, for the tokenize routes.

The ids are the ones a generate or chat request would run: the tokenizer is the leased runner's
own (the engine's, whichever plugin loaded the model), a text is tokenized as a raw prompt is
(``prompting.prompt_tokens``: BOS as the model asks, special tokens' text read as those tokens),
and a conversation is first rendered exactly as chat renders it (the model's SYSTEM and MESSAGE
history, its renderer or template, the tools, thinking, and the history that fits the context
this request would run with). The model is leased, and so loaded if it was not, because both the
tokenizer and that context come from the loaded runner.
"""

from __future__ import annotations

import time

from ..errors import BadRequest
from ..interfaces import Lease, Tokenizer
from ..options import merged
from ..web.body import field
from . import prompting
from .answer import nanoseconds_since
from .chat import full_conversation, render
from .models import capabilities, check_think, find_model, require
from .requests import Common, parse_common, parse_messages, parse_tools

MAX_TEXT = 1 << 20  # characters one request may tokenize (its text, or its rendered chat)
MAX_TOKENS = 1 << 20  # ids one request may detokenize


def _text_model(kernel, common: Common):
    """The stored model, which must be one that reads prompts (an embedding model has no
    generation prompt to count)."""
    if not common.model:
        raise BadRequest("model is required")
    model = find_model(kernel, common.model)
    caps = capabilities(model)
    if "completion" not in caps:
        raise BadRequest(f'"{common.model}" does not support tokenize')
    return model, caps


def _lease(kernel, model, common: Common, gone) -> Lease:
    return kernel.scheduler.acquire(
        model, merged(model.params, common.options), common.keep_alive, gone
    )


def _check_length(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise BadRequest(f"the text to tokenize is {len(text)} characters, more than {MAX_TEXT}")
    return text


def _source(body: dict) -> tuple[str | None, list[dict]]:
    """The text (``content``, as llama-server names it, or ``prompt``) or the ``messages``:
    exactly one of them."""
    text = field(body, "content", str, None)
    if text is None:
        text = field(body, "prompt", str, None)
    messages = parse_messages(body.get("messages"))
    if (text is None) == (not messages):
        raise BadRequest('give either "content" (or "prompt") or "messages"')
    if any(m.get("images") for m in messages):
        raise BadRequest("tokenize does not take images")
    return (None if text is None else _check_length(text)), messages


def piece(tokenizer: Tokenizer, token: int) -> str | list[int]:
    """A token's text, as llama-server's ``with_pieces`` gives it: a string when its bytes are
    whole UTF-8, else the bytes (a part of a character)."""
    data = tokenizer.token_to_piece(token, special=True)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return list(data)


def tokenize(kernel, body: dict, *, gone=None) -> dict:
    """``{"model", "tokens", "total_duration", "load_duration"}`` for a text or a conversation.
    ``add_special`` (default true) and ``parse_special`` (default true) are the engine's choice
    for a prompt; ``with_pieces`` gives each token as ``{"id", "piece"}``."""
    started = time.perf_counter_ns()
    common = parse_common(body)
    text, messages = _source(body)
    add_special = field(body, "add_special", bool, True)
    parse_special = field(body, "parse_special", bool, True)
    with_pieces = field(body, "with_pieces", bool, False)
    tools = parse_tools(body)
    model, caps = _text_model(kernel, common)
    think = None
    if messages:
        require(model, caps, ["tools"] if tools else [])
        think = check_think(model, common.model, common.think, caps)
    lease = _lease(kernel, model, common, gone)
    try:
        load_ns = nanoseconds_since(started)
        tokenizer = lease.tokenizer
        if text is None:
            conversation = full_conversation(model, messages)
            text = render(lease, model, conversation, tools, think, common.truncate).text
            _check_length(text)
        if add_special and parse_special:  # the prompt as generate and chat run it
            tokens = prompting.prompt_tokens(lease, text, [], gone)
        else:
            tokens = tokenizer.encode(text, add_special=add_special, parse_special=parse_special)
        listed: list = (
            [{"id": t, "piece": piece(tokenizer, t)} for t in tokens] if with_pieces else tokens
        )
    finally:
        lease.release()
    return {
        "model": common.model,
        "tokens": listed,
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
    }


def parse_tokens(value) -> list[int]:
    if not isinstance(value, list):
        raise BadRequest('"tokens" must be an array of token ids')
    if len(value) > MAX_TOKENS:
        raise BadRequest(f"too many tokens: {len(value)} (at most {MAX_TOKENS})")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise BadRequest('"tokens" must be an array of token ids')
    return value


def detokenize(kernel, body: dict, *, gone=None) -> dict:
    """``{"model", "content", ...}``: the text of ``tokens``, control tokens spelled out (as
    llama-server's ``/detokenize`` writes them) unless ``special`` is false."""
    started = time.perf_counter_ns()
    common = parse_common(body)
    tokens = parse_tokens(body.get("tokens"))
    special = field(body, "special", bool, True)
    model, _ = _text_model(kernel, common)
    lease = _lease(kernel, model, common, gone)
    try:
        load_ns = nanoseconds_since(started)
        tokenizer = lease.tokenizer
        size = tokenizer.vocab_size
        bad = next((t for t in tokens if not 0 <= t < size), None)
        if bad is not None:
            raise BadRequest(f"token id {bad} is out of range (vocabulary of {size})")
        content = tokenizer.decode(tokens, special=special)
    finally:
        lease.release()
    return {
        "model": common.model,
        "content": content,
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
    }
