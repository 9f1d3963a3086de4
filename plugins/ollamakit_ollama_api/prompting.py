"""Prompts from requests, built by ``ollamakit_templates`` as Ollama builds them: the model's Go
template (or, without one, the GGUF's Jinja chat template; or ``{{ .Prompt }}``)."""

from __future__ import annotations

from ollamakit.errors import BadRequest, OllamaError
from ollamakit.store import LocalModel
from ollamakit_structured.output import OutputParser
from ollamakit_templates import IMAGE_TOKENS, parse_template, render_chat, render_generate

from . import modelinfo


def capabilities(model: LocalModel) -> set[str]:
    """What the model can do (the same answer ``/api/show`` gives)."""
    return set(modelinfo.model_capabilities(model))


def request_template(text: str):
    """A request's ``template``; one that does not parse is a 500, as Ollama answers."""
    try:
        return parse_template(text)
    except BadRequest as exc:
        raise OllamaError(exc.message) from None


def _jinja(model: LocalModel) -> str | None:
    if model.template is not None:
        return None
    layer = model.model_layer
    gguf = modelinfo.gguf_header(model.store, layer.digest) if layer else None
    return modelinfo.jinja_template(gguf)


def _jinja_vars(tokenizer) -> dict:
    """``bos_token``/``eos_token`` for Jinja templates that print them."""
    names = {}
    for key, token in (("bos_token", getattr(tokenizer, "bos_id", None)), ("eos_token", getattr(tokenizer, "eos_id", None))):
        if isinstance(token, int) and token >= 0:
            text = getattr(tokenizer, "token_text", None)
            names[key] = text(token) if text else tokenizer.token_to_piece(token).decode("utf-8", "replace")
    return names


def _counter(tokenizer):
    return lambda text: len(tokenizer.encode(text, add_special=True, parse_special=True))


def chat_prompt(model: LocalModel, messages: list[dict], tokenizer, num_ctx: int, *, tools=None, think=None,
                truncate: bool = True) -> str:
    """The prompt for a conversation; with ``truncate`` the oldest history that does not fit
    ``num_ctx`` is left out (system messages and the last message always stay)."""
    prompt = render_chat(
        model.template,
        _jinja(model),
        messages,
        tools,
        think,
        count_tokens=_counter(tokenizer) if truncate else None,
        num_ctx=num_ctx if truncate else None,
        image_tokens=IMAGE_TOKENS,
        **_jinja_vars(tokenizer),
    )
    return prompt.text


def generate_prompt(model: LocalModel, prompt: str, tokenizer, num_ctx: int, *, system: str = "", suffix: str = "",
                    template=None, images=(), think=None, with_history: bool = True) -> str:
    """The prompt for ``/api/generate`` (not raw): fill-in-the-middle with ``suffix``, the
    request's ``template`` over the conversation, or the model's chat path."""
    rendered = render_generate(
        model.template,
        _jinja(model),
        prompt,
        system=system or None,
        model_system=model.system or None,
        history=[m for m in model.messages if isinstance(m, dict)],
        images=images,
        suffix=suffix or None,
        request_template=template.raw if template is not None else None,
        think=think,
        with_history=with_history,
        count_tokens=_counter(tokenizer),
        num_ctx=num_ctx,
        image_tokens=IMAGE_TOKENS,
        **_jinja_vars(tokenizer),
    )
    return rendered.text


def output_parser(model: LocalModel, prompt: str, *, tools=None, think=None, template=None) -> OutputParser | None:
    """How to read the output back (thinking, tool calls) by the tags of the template that made
    ``prompt``; None when the output passes as it is."""
    if template is None and model.template is not None:
        template = parse_template(model.template)
    return OutputParser.build(template, _jinja(model) if template is None else None, tools=tools, think=think,
                              prompt=prompt)
