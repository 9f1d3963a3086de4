"""What a stored model can do, and the chat template it runs: read from its GGUF header and its
templates. ``/api/show`` lists these capabilities and the inference service checks requests
against them, so both read them here."""

from __future__ import annotations

from . import manifest as mf, rendering
from .lib.templates import jinja_capabilities, template_capabilities


def gguf_header(store, digest: str):
    """The ``ModelHeader`` of a stored model file (``ModelStore.model_header``: read by the
    plugin for its format, cached by digest), or None when absent or of no known format."""
    return store.model_header(digest)


def jinja_template(header) -> str | None:
    """The model file's own chat template (its ``ModelHeader``'s): what runs ("native mode")
    when there is no Go template."""
    return header.chat_template if header is not None else None


def model_jinja_template(model) -> str | None:
    """The Jinja template a stored model (a ``LocalModel``) is prompted with: its GGUF's own,
    when it has no Go template."""
    if model.template is not None:
        return None
    layer = model.model_layer
    return jinja_template(gguf_header(model.store, layer.digest) if layer else None)


def model_capabilities(model) -> list[str]:
    """The capabilities of a stored model (a ``LocalModel``), as ``/api/show`` lists them."""
    layer = model.model_layer
    gguf = gguf_header(model.store, layer.digest) if layer else None
    return capabilities(gguf, model.template, bool(model.manifest.find(mf.PROJECTOR)), model.config)


def _template_capabilities(gguf, template: str | None) -> set[str]:
    if template is not None:
        return set(template_capabilities(template))
    jinja = jinja_template(gguf)
    return set(jinja_capabilities(jinja)) if jinja else set()


RANK_POOLING = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK: a cross-encoder's classifier head


def encoder_or_completion(metadata: dict, arch: str) -> str:
    """``completion`` without a pooling type; with one, ``rerank`` for a rank head (it scores a
    query with a document, and makes no embeddings) and ``embedding`` for the rest."""
    pooling = metadata.get(f"{arch}.pooling_type")
    if pooling is None:
        return "completion"
    return "rerank" if pooling == RANK_POOLING else "embedding"


def capabilities(
    gguf, template: str | None, has_projector: bool = False, config: dict | None = None
) -> list[str]:
    """Ollama's order: completion, embedding or rerank, vision, tools, insert, thinking. ``template``
    is the Go template (None when the model has none; then the GGUF's Jinja one counts)."""
    config = config or {}
    found: list[str] = []
    if gguf is not None:
        arch = gguf.architecture or ""
        found.append(encoder_or_completion(gguf.metadata, arch))
        if f"{arch}.vision.block_count" in gguf.metadata:
            found.append("vision")
    else:
        found.extend(c for c in config.get("capabilities") or [] if isinstance(c, str))
    from_template = _template_capabilities(gguf, template)
    for capability in ("tools", "insert"):
        if capability in from_template and capability not in found:
            found.append(capability)
    if has_projector and "vision" not in found:
        found.append("vision")
    add_parser_capabilities(found, config)
    family = config.get("model_family", "")
    if ("thinking" in from_template or family in ("gptoss", "gpt-oss")) and "thinking" not in found:
        found.append("thinking")
    return found


def add_parser_capabilities(found: list[str], config: dict) -> None:
    """A built-in parser that reads tool calls or thinking gives the model those capabilities,
    whatever its template says (Ollama's ``parserCapabilities``)."""
    name = config.get("parser")
    parser = rendering.load_parser(name) if isinstance(name, str) else None
    if parser is None:
        return
    for capability, supported in (
        ("tools", parser.has_tool_support),
        ("thinking", parser.has_thinking_support),
    ):
        if supported and capability not in found:
            found.append(capability)
