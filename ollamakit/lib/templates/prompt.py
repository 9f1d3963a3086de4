"""Prompt building, as Ollama does it: which variables a template sees, how messages are
collated, how legacy (per-turn) templates run, fill-in-the-middle, image markers, and the
truncation of old history to fit the context window.

Messages are API dicts: ``{"role", "content", "images"?, "tool_calls"?, "tool_name"?,
"tool_call_id"?, "thinking"?}``. Tools are API tool dicts.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Callable, Iterable

from .convert import message_value, tools_value
from .jinja import render_jinja
from .template import DEFAULT_TEMPLATE, Template, parse_template

# Ollama counts each image as this many tokens when deciding what history fits.
IMAGE_TOKENS = 768


@dataclass
class Prompt:
    """A rendered prompt, the images it refers to (``[img-N]`` is ``images[N]``), how many of
    the oldest messages were dropped to fit the context, and the output parser that goes with
    it when the model names one."""

    text: str
    images: list = field(default_factory=list)
    dropped: int = 0
    output: object = None  # a built-in output parser prepared with the prompt (it may rename tools)


def think_values(think) -> dict:
    """``.Think``, ``.ThinkLevel`` and ``.IsThinkSet`` from a request's ``think`` value."""
    if think is None:
        return {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    if isinstance(think, bool):
        return {"Think": think, "ThinkLevel": "medium" if think else "", "IsThinkSet": True}
    level = str(think)
    return {
        "Think": level in ("low", "medium", "high", "max"),
        "ThinkLevel": level,
        "IsThinkSet": True,
    }


def collate(messages: Iterable[dict]) -> tuple[str, list[dict]]:
    """Join all system messages with blank lines, and merge consecutive messages of one role
    (except tool results, which keep their own metadata)."""
    system: list[str] = []
    collated: list[dict] = []
    for msg in messages:
        role = msg.get("role") or ""
        if role == "system":
            system.append(msg.get("content") or "")
        if collated and collated[-1].get("role") == role and role != "tool":
            last = dict(collated[-1])
            last["content"] = (last.get("content") or "") + "\n\n" + (msg.get("content") or "")
            collated[-1] = last
        else:
            collated.append(msg)
    return "\n\n".join(system), collated


def _as_template(template) -> Template:
    if isinstance(template, Template):
        return template
    return _parsed(template or DEFAULT_TEMPLATE)


@lru_cache(maxsize=64)
def _parsed(text: str) -> Template:
    # Truncation renders the same template many times; a parsed template is never mutated.
    return parse_template(text)


def execute(template, messages: list[dict], tools=None, think=None) -> str:
    """Ollama's ``Template.Execute`` for a conversation: messages-style templates see the whole
    conversation at once; legacy templates run once per turn and the last turn stops at
    ``.Response``."""
    tmpl = _as_template(template)
    system, turns = collate(messages)
    thinking = think_values(think)
    if tmpl.uses_messages:
        return tmpl.execute(
            {
                "System": system,
                "Messages": [message_value(m) for m in turns],
                "Tools": tools_value(tools),
                "Response": "",
                **thinking,
            }
        )
    return _execute_legacy(tmpl, turns, thinking)


def _execute_legacy(tmpl: Template, turns: list[dict], thinking: dict) -> str:
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush():
        out.append(tmpl.execute({**turn, **thinking}))
        turn.update(System="", Prompt="", Response="")

    for msg in turns:
        role, content = msg.get("role"), msg.get("content") or ""
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = content
        elif role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = content
        elif role == "assistant":
            turn["Response"] = content
    out.append(tmpl.execute_until_response({**turn, **thinking}))
    return "".join(out)


def render_fim(template, prompt: str, suffix: str, think=None) -> str:
    """Fill-in-the-middle: the template sees only ``.Prompt``, ``.Suffix`` and the think values."""
    tmpl = _as_template(template)
    return tmpl.execute({"Prompt": prompt, "Suffix": suffix, "Response": "", **think_values(think)})


def tag_images(messages: list[dict], start: int = 0) -> tuple[list[dict], list]:
    """Put ``[img-N]`` markers in messages from ``start`` on: in front of the content, or in
    place of a literal ``[img]``. Returns the new messages and the images in marker order."""
    tagged = list(messages)
    images: list = []
    for n in range(start, len(tagged)):
        msg = tagged[n]
        if not msg.get("images"):
            continue
        prefix, content = "", msg.get("content") or ""
        for image in msg["images"]:
            tag = f"[img-{len(images)}]"
            images.append(image)
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        tagged[n] = {**msg, "content": prefix + content}
    return tagged, images


def fit_messages(
    messages: list[dict],
    render: Callable[[list[dict]], str],
    count_tokens: Callable[[str], int],
    num_ctx: int,
    image_tokens: int = 0,
) -> int:
    """Index of the first message to keep so the rendered prompt fits ``num_ctx`` tokens.

    Ollama's rule: the latest messages that fit are kept, the system messages among the older
    ones are kept too (moved to the front), and the last message is kept however long it is.
    Ollama finds the cut by rendering once per message from the end, and the whole conversation
    each time a message is added: quadratic in a long chat. A prompt only grows as messages are
    kept, so the same cut is found by doubling the kept tail until it no longer fits, then
    bisecting: a handful of renders, each no larger than what is kept (plus system messages).
    """
    last = len(messages) - 1
    if last <= 0:
        return 0
    systems = [n for n, m in enumerate(messages) if m.get("role") == "system"]
    images_from = [0] * (last + 2)  # images in messages[i:]
    for n in range(last, -1, -1):
        images_from[n] = images_from[n + 1] + len(messages[n].get("images") or [])

    def fits(i: int) -> bool:
        kept = [messages[n] for n in systems[: bisect_left(systems, i)]] + messages[i:]
        return count_tokens(render(kept)) + image_tokens * images_from[i] <= num_ctx

    if fits(0):
        return 0
    fitting, failing, step = last, 0, 1  # fits(last) is not asked: the last message stays anyway
    while last - step > 0:
        if not fits(last - step):
            failing = last - step
            break
        fitting, step = last - step, step * 2
    while fitting - failing > 1:
        middle = (fitting + failing) // 2
        if fits(middle):
            fitting = middle
        else:
            failing = middle
    return fitting


def render_chat(
    template=None,
    jinja: str | None = None,
    messages: Iterable[dict] = (),
    tools=None,
    think=None,
    *,
    count_tokens: Callable[[str], int] | None = None,
    num_ctx: int | None = None,
    image_tokens: int = 0,
    tag_image_markers: bool = True,
    **jinja_vars,
) -> Prompt:
    """The prompt for a chat turn.

    ``template`` (Go text or :class:`Template`) wins when given; otherwise ``jinja`` (a GGUF
    ``tokenizer.chat_template``) is rendered; with neither, Ollama's default ``{{ .Prompt }}``.
    With ``count_tokens`` and ``num_ctx`` the oldest history is dropped until the prompt fits.
    ``jinja_vars`` (``bos_token``, ``eos_token``, ...) go to the Jinja template only.
    """
    messages = list(messages)
    use_go = template is not None and template != "" or not jinja

    def render(msgs: list[dict]) -> str:
        if use_go or not jinja:
            return execute(template, msgs, tools, think)
        return render_jinja(jinja, msgs, tools=tools, think=think, **jinja_vars)

    start = 0
    if count_tokens is not None and num_ctx is not None and messages:
        start = fit_messages(messages, render, count_tokens, num_ctx, image_tokens)
    kept_system = [m for m in messages[:start] if m.get("role") == "system"]
    images: list = []
    if use_go and tag_image_markers:
        messages, images = tag_images(messages, start)
    else:
        images = [img for m in messages[start:] for img in (m.get("images") or [])]
    return Prompt(render(kept_system + messages[start:]), images, start - len(kept_system))


def render_with(
    render: Callable[[list[dict]], str],
    messages: Iterable[dict] = (),
    *,
    count_tokens: Callable[[str], int] | None = None,
    num_ctx: int | None = None,
    image_tokens: int = 0,
) -> Prompt:
    """The prompt a code renderer (``render(messages)``) makes of a conversation, the oldest
    history dropped as for templates. Such a renderer places images itself: no ``[img-N]``."""
    messages = list(messages)
    start = 0
    if count_tokens is not None and num_ctx is not None and messages:
        start = fit_messages(messages, render, count_tokens, num_ctx, image_tokens)
    kept_system = [m for m in messages[:start] if m.get("role") == "system"]
    images = [img for m in messages[start:] for img in (m.get("images") or [])]
    return Prompt(render(kept_system + messages[start:]), images, start - len(kept_system))


def generate_messages(
    prompt: str,
    *,
    system: str | None = None,
    model_system: str | None = None,
    history: Iterable[dict] = (),
    images: Iterable = (),
    with_history: bool = True,
) -> list[dict]:
    """The conversation /api/generate renders: a system prompt (the request's, else the
    model's), the model's MESSAGE history (unless ``context`` was sent), then the prompt."""
    msgs: list[dict] = []
    if system:
        msgs.append({"role": "system", "content": system})
    elif model_system:
        msgs.append({"role": "system", "content": model_system})
    if with_history:
        msgs.extend(history)
    user: dict[str, object] = {"role": "user", "content": prompt}
    images = list(images)
    if images:
        user["images"] = images
    msgs.append(user)
    return msgs


def render_generate(
    template=None,
    jinja: str | None = None,
    prompt: str = "",
    *,
    system: str | None = None,
    model_system: str | None = None,
    history: Iterable[dict] = (),
    images: Iterable = (),
    suffix: str | None = None,
    request_template: str | None = None,
    think=None,
    with_history: bool = True,
    count_tokens=None,
    num_ctx=None,
    image_tokens: int = 0,
    **jinja_vars,
) -> Prompt:
    """The prompt for /api/generate (not raw): FIM when ``suffix`` is set; a request
    ``template`` runs directly over the conversation; otherwise the chat path without tools."""
    images = list(images)
    if suffix:
        tmpl = request_template or template
        if prompt:
            return Prompt(render_fim(tmpl, prompt, suffix, think), images)
        # Ollama fills in the middle only with a prompt; otherwise the template runs with
        # no conversation at all.
        return Prompt(execute(tmpl, [], None, think), images)
    msgs = generate_messages(
        prompt,
        system=system,
        model_system=model_system,
        history=history,
        images=images,
        with_history=with_history,
    )
    if request_template:
        return Prompt(execute(parse_template(request_template), msgs, None, think), images)
    # Ollama renders generate's conversation with an empty (not absent) tool list.
    return render_chat(
        template,
        jinja,
        msgs,
        [],
        think,
        count_tokens=count_tokens,
        num_ctx=num_ctx,
        image_tokens=image_tokens,
        **jinja_vars,
    )
