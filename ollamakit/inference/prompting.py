"""Prompts from requests, built as Ollama builds them: by the model's built-in renderer when its
config names one (``ollamakit.rendering``), else by ``ollamakit.lib.templates`` from the model's
Go template (or, without one, the GGUF's Jinja chat template; or ``{{ .Prompt }}``); their token
ids, images among them; and the reader of the answer (thinking, tool calls): the model's
built-in parser when it has one, else the one the template implies."""

from __future__ import annotations

import re

from .. import rendering
from ..capabilities import model_jinja_template
from ..errors import BadRequest, OllamaError
from ..images import ImageToken, image_tokens
from ..interfaces import Lease, Runner, Tokenizer
from ..lib.structured import OutputParser
from ..lib.templates import (
    IMAGE_TOKENS,
    generate_messages,
    parse_template,
    render_chat,
    render_generate,
    render_with,
)
from ..store import LocalModel


def request_template(text: str):
    """A request's ``template``; one that does not parse is a 500, as Ollama answers."""
    try:
        return parse_template(text)
    except BadRequest as exc:
        raise OllamaError(exc.message) from None


def _jinja_vars(tokenizer: Tokenizer) -> dict:
    """``bos_token``/``eos_token`` for Jinja templates that print them."""
    names = {}
    for key, token in (("bos_token", tokenizer.bos_id), ("eos_token", tokenizer.eos_id)):
        if isinstance(token, int) and token >= 0:
            names[key] = tokenizer.token_text(token)
    return names


IMAGE_TAG = re.compile(r"\[img-(\d+)\]")
PLACEHOLDER_ID = 0  # what an image row's id reads as to code that only counts tokens


def image_token_count(runner: Runner) -> int:
    """What an image takes of the context when deciding which history fits: its rows and the
    text around them for a model that can see; Ollama's flat count otherwise."""
    vision = runner.vision
    return vision.tokens_per_image + 2 if vision is not None else IMAGE_TOKENS


def prompt_tokens(lease: Lease, text: str, images: list[bytes], gone=None) -> list[int]:
    """The prompt's token ids, each ``[img-N]`` replaced by image N's rows (``ImageToken``s)
    between the model's image markers, tokenized in pieces as llama.cpp's mtmd does (the
    special tokens only before the first piece). A prompt with images that do not fit the
    context is a 400: cutting an image would leave the model half a picture. ``gone()``
    saying the client left stops an image's encoding."""
    tokenizer = lease.tokenizer
    text = _without_leading_bos(tokenizer, text)
    vision = lease.runner.vision
    if not images or vision is None:
        return tokenizer.encode(text, add_special=True, parse_special=True)
    pieces, order, last = [], [], 0
    for match in IMAGE_TAG.finditer(text):
        index = int(match.group(1))
        if index >= len(images):
            raise BadRequest(f"invalid image index: {index}")
        pieces.append(text[last : match.start()])
        order.append(index)
        last = match.end()
    pieces.append(text[last:])
    missing = sorted(set(range(len(images))) - set(order))
    if missing:  # never read silently past an image
        raise BadRequest(
            f"the prompt does not place image {missing[0]}: its [img-{missing[0]}] tag is missing"
        )
    encoded, tokens = {}, []
    for n, piece in enumerate(pieces):
        before = vision.end if n > 0 else ""
        after = vision.begin if n < len(order) else ""
        tokens += tokenizer.encode(before + piece + after, add_special=n == 0, parse_special=True)
        # checked before each image is encoded, not once at the end: a prompt of many images
        # stops at the first that cannot fit instead of running the tower over all of them
        if len(tokens) > lease.num_ctx or (n < len(order) and len(tokens) >= lease.num_ctx):
            raise _images_do_not_fit(len(images), lease.num_ctx)
        if n < len(order):
            index = order[n]
            if index not in encoded:
                encoded[index] = vision.encode(images[index], should_stop=gone)
            tokens += image_tokens(encoded[index], PLACEHOLDER_ID)
    if len(tokens) > lease.num_ctx:
        raise _images_do_not_fit(len(images), lease.num_ctx)
    return tokens


def _images_do_not_fit(count: int, num_ctx: int) -> BadRequest:
    return BadRequest(
        f"the prompt with its {count} image(s) takes more than the context window of {num_ctx} "
        "tokens; send fewer images or raise num_ctx"
    )


def context_tokens(tokens: list[int], text: str, tokenizer: Tokenizer) -> list[int]:
    """``/api/generate``'s ``context`` for a prompt made from ``text``: its tokens, each image's
    rows replaced by its ``[img-N]`` tag as text, as Ollama's context (the prompt's text
    tokenized) holds it; a context returned as ids cannot carry a picture."""
    if not any(isinstance(t, ImageToken) for t in tokens):
        return list(tokens)
    tags = [m.group(0) for m in IMAGE_TAG.finditer(text)]
    out: list[int] = []
    placed = 0
    for token in tokens:
        if not isinstance(token, ImageToken):
            out.append(token)
        elif token.first:
            tag = tags[placed] if placed < len(tags) else "[img]"
            out += tokenizer.encode(tag, add_special=False, parse_special=False)
            placed += 1
    return out


def check_context(context: list[int], tokenizer: Tokenizer, vision) -> None:
    """A context sent back after a prompt with images names them by tag only. Ollama then
    reads the tag as a new image's place, or as text; either way the model would not see the
    picture the context was made with, so a model that can see refuses it."""
    if vision is None or not context:
        return
    tag = IMAGE_TAG.search(tokenizer.decode(context))
    if tag is not None:
        raise BadRequest(
            f"the context holds an image ({tag.group(0)}), which a context cannot carry: "
            "send the conversation to /api/chat with its images instead"
        )


def _without_leading_bos(tokenizer: Tokenizer, text: str) -> str:
    """A prompt that already starts with the BOS token's text (renderers such as deepseek3.1
    write it, as do some templates) loses it when the tokenizer adds BOS anyway: one BOS, as
    Ollama strips a renderer's leading BOS before llama-server tokenizes."""
    bos = _jinja_vars(tokenizer).get("bos_token") if tokenizer.add_bos else None
    return text[len(bos) :] if bos and text.startswith(bos) else text


def _counter(tokenizer):
    return lambda text: len(tokenizer.encode(text, add_special=True, parse_special=True))


class Builtin:
    """What a model's config names for this request: its renderer (or None: the template) and
    its output parser, prepared with the request's tools (which it may rename), and the
    ``think`` value both see."""

    def __init__(self, model: LocalModel, messages: list[dict], tools, think):
        name = rendering.parser_name(model.config, model.template)
        self.think = rendering.harmony_think(think) if name == "harmony" else think
        self.renderer = rendering.load_renderer(rendering.renderer_name(model.config, model.name))
        self.tools = tools
        self.output = None
        parser = rendering.load_parser(name)
        if parser is not None:
            self.tools = parser.init(tools, messages[-1] if messages else None, self.think)
            self.output = rendering.ParsedStream(parser, self.think)

    def _render(self, messages: list[dict]) -> str:
        try:
            return self.renderer.render(messages, self.tools, self.think)
        except ValueError as exc:  # a conversation the model's format cannot hold
            raise BadRequest(str(exc)) from None

    def render(self, messages: list[dict], tokenizer, num_ctx: int | None, image_tokens: int):
        prompt = render_with(
            self._render,
            messages,
            count_tokens=_counter(tokenizer) if num_ctx else None,
            num_ctx=num_ctx,
            image_tokens=image_tokens,
        )
        prompt.output = self.output
        return prompt


def chat_prompt(
    model: LocalModel,
    messages: list[dict],
    tokenizer,
    num_ctx: int,
    *,
    tools=None,
    think=None,
    truncate: bool = True,
    image_tokens: int = IMAGE_TOKENS,
):
    """The prompt for a conversation; with ``truncate`` the oldest history that does not fit
    ``num_ctx`` is left out (system messages and the last message always stay). Returns the
    ``Prompt``: its text, the images its ``[img-N]`` tags name, and the built-in output parser
    that goes with it (if the model has one)."""
    messages = rendering.filter_think_tags(
        messages, model.config.get("model_family") or "", model.name
    )
    builtin = Builtin(model, messages, tools, think)
    if builtin.renderer is not None:
        return builtin.render(messages, tokenizer, num_ctx if truncate else None, image_tokens)
    prompt = render_chat(
        model.template,
        model_jinja_template(model),
        messages,
        builtin.tools,
        builtin.think,
        count_tokens=_counter(tokenizer) if truncate else None,
        num_ctx=num_ctx if truncate else None,
        image_tokens=image_tokens,
        **_jinja_vars(tokenizer),
    )
    prompt.output = builtin.output
    return prompt


def generate_prompt(
    model: LocalModel,
    prompt: str,
    tokenizer,
    num_ctx: int,
    *,
    system: str = "",
    suffix: str = "",
    template=None,
    images=(),
    think=None,
    with_history: bool = True,
    image_tokens: int = IMAGE_TOKENS,
    truncate: bool = True,
):
    """The prompt for ``/api/generate`` (not raw): fill-in-the-middle with ``suffix``, the
    request's ``template`` over the conversation, or the model's chat path (its renderer, if it
    names one). Returns the ``Prompt``: its text, the images its ``[img-N]`` tags name, and the
    built-in output parser that goes with it. With ``truncate`` false (the request's), the
    MESSAGE history is kept whole, as Ollama's chat-like generate keeps it."""
    history = [m for m in model.messages if isinstance(m, dict)]
    builtin = Builtin(model, [], None, think)  # generate offers no tools, and continues nothing
    if builtin.renderer is not None and not suffix and template is None:
        messages = generate_messages(
            prompt,
            system=system or None,
            model_system=model.system or None,
            history=history,
            images=images,
            with_history=with_history,
        )
        return builtin.render(messages, tokenizer, num_ctx if truncate else None, image_tokens)
    rendered = render_generate(
        model.template,
        model_jinja_template(model),
        prompt,
        system=system or None,
        model_system=model.system or None,
        history=history,
        images=images,
        suffix=suffix or None,
        request_template=template.raw if template is not None else None,
        think=builtin.think,
        with_history=with_history,
        count_tokens=_counter(tokenizer) if truncate else None,
        num_ctx=num_ctx if truncate else None,
        image_tokens=image_tokens,
        **_jinja_vars(tokenizer),
    )
    rendered.output = builtin.output
    return rendered


def output_parser(
    model: LocalModel, prompt: str, *, tools=None, think=None, template=None, rendered=None
):
    """How to read the output back: the model's built-in parser prepared with ``rendered`` (the
    ``Prompt``), else by the tags of the template that made ``prompt``; None when the output
    passes as it is."""
    if rendered is not None and rendered.output is not None:
        return rendered.output
    if template is None and model.template is not None:
        template = parse_template(model.template)
    return OutputParser.build(
        template,
        model_jinja_template(model) if template is None else None,
        tools=tools,
        think=think,
        prompt=prompt,
    )
