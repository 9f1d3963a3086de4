"""The inference service: Ollama's native chat, generate and embed, reranking, and tokenizing,
for every route that runs a model.

A route translates its API's request into a native one (a dict, as a client sends it to
``/api/*``), calls the service, and translates the native reply objects back: the native routes
pass them through, the OpenAI and Anthropic routes rewrite them, as Ollama runs its own
compatibility endpoints over its native handlers. The service does the rest, in one direction:

    request fields (``requests``) → the stored model and its capabilities (``models``)
    → the options (``ollamakit.options``) → a lease on the loaded model (``kernel.scheduler``)
    → the prompt and its tokens (``prompting``) → the answer's constraint and parser
    (``answer``) → the sequence's ``Chunk``s and ``Done`` → reply objects.

It speaks to the scheduler and the runner only through the kernel's protocols
(``ollamakit.interfaces``), so any plugin's ``make_scheduler`` and ``load_model`` can serve it.
"""

from __future__ import annotations

from .chat import chat
from .embed import embed, embedding
from .generate import generate
from .rerank import rerank
from .tokenize import detokenize, tokenize

__all__ = ["chat", "detokenize", "embed", "embedding", "generate", "rerank", "tokenize"]
