"""Prompts from requests: the model's template (``ollamakit_templates``) applied to messages,
or, for a model with no template, Ollama's default ``{{ .Prompt }}`` behaviour."""

from __future__ import annotations

import importlib

from ollamakit.errors import OllamaError
from ollamakit.store import LocalModel

EMBEDDING_FAMILIES = {"bert", "nomic-bert", "nomic-bert-moe", "xlm-roberta", "jina-bert-v2", "new"}


def _templates():
    try:
        return importlib.import_module("ollamakit_templates")
    except ImportError:
        return None


def capabilities(model: LocalModel, template: str | None = None) -> set[str]:
    """What the model can do, judged as Ollama does: from its family and its template."""
    templates = _templates()
    if templates is not None and hasattr(templates, "capabilities"):
        return set(templates.capabilities(model))
    caps = set()
    family = str(model.config.get("model_family", "")).lower()
    if family not in EMBEDDING_FAMILIES:
        caps.add("completion")
    text = template if template is not None else (model.template or "")
    if ".Suffix" in text:
        caps.add("insert")
    if ".Tools" in text:
        caps.add("tools")
    if model.manifest.find("application/vnd.ollama.image.projector"):
        caps.add("vision")
    return caps


def _require_templates(what: str):
    templates = _templates()
    if templates is None:
        raise OllamaError(f"{what} needs the ollamakit_templates plugin, which is not installed")
    return templates


def chat_prompt(model: LocalModel, messages: list[dict], tools=None, think=None, template: str | None = None) -> str:
    """The prompt for a conversation, with the model's template (or ``template``)."""
    text = template if template is not None else model.template
    if text is None and not _has_jinja(model):
        # Ollama's default template ``{{ .Prompt }}{{ .Response }}``, run once per turn: the
        # turns' prompts and responses in order; it never mentions the system prompt.
        return "".join(m.get("content") or "" for m in messages if m.get("role") in ("user", "assistant"))
    templates = _require_templates("rendering this model's chat template")
    return templates.render_chat(model, messages, tools=tools, think=think, template=template)


def fill_in_middle(model: LocalModel, prompt: str, suffix: str, template: str | None = None) -> str:
    templates = _require_templates("fill-in-the-middle")
    return templates.render_fim(model, prompt, suffix, template=template)


def _has_jinja(model: LocalModel) -> bool:
    templates = _templates()
    return bool(templates is not None and hasattr(templates, "has_jinja") and templates.has_jinja(model))


def check_template(template: str) -> None:
    """A request's ``template`` must parse (a 500 otherwise, as Ollama answers)."""
    templates = _templates()
    if templates is not None and hasattr(templates, "check"):
        try:
            templates.check(template)
        except Exception as exc:
            raise OllamaError(f"template: {exc}") from None
