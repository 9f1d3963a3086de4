"""Ollama's native chat, generate and embed, for the layers that speak other APIs over them.

Ollama runs its OpenAI and Anthropic endpoints by rewriting the request for its own chat,
generate and embed handlers and rewriting their replies. Here those handlers are reached
through the ``run_chat``, ``run_generate`` and ``run_embed`` hooks, so a compatibility plugin
depends on the kernel, not on the plugin that serves ``/api/*``, and any plugin can take over.
``rerank`` (the ``run_rerank`` hook) scores documents against a query for the rerank routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .errors import NotFound


def _unavailable(what: str) -> NotFound:
    return NotFound(f"{what} is not available: no installed plugin runs it")


def chat(kernel, request: dict, *, gone: Callable[[], bool] | None = None,
         relax_thinking: bool = False) -> Iterator[dict]:
    """The reply objects of a native chat request, streamed chunk by chunk."""
    events = kernel.hook.run_chat(kernel=kernel, request=request, gone=gone, relax_thinking=relax_thinking)
    if events is None:
        raise _unavailable("chat")
    return events


def generate(kernel, request: dict, *, gone: Callable[[], bool] | None = None) -> Iterator[dict]:
    """The reply objects of a native generate request, streamed chunk by chunk."""
    events = kernel.hook.run_generate(kernel=kernel, request=request, gone=gone)
    if events is None:
        raise _unavailable("generate")
    return events


def embed(kernel, request: dict, *, gone: Callable[[], bool] | None = None) -> dict:
    """The reply object of a native embed request."""
    reply = kernel.hook.run_embed(kernel=kernel, request=request, gone=gone)
    if reply is None:
        raise _unavailable("embeddings")
    return reply


def rerank(kernel, request: dict, *, gone: Callable[[], bool] | None = None) -> dict:
    """One relevance score per document of a rerank request, in the documents' order."""
    reply = kernel.hook.run_rerank(kernel=kernel, request=request, gone=gone)
    if reply is None:
        raise _unavailable("reranking")
    return reply
