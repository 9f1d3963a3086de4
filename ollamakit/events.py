"""What a running sequence streams to the request that started it: ``Chunk``s of text, then
one ``Done`` with the ``Metrics``. A scheduler emits these kernel types, so the inference
service reads any scheduler's stream alike (``ollamakit.interfaces.Sequence``). And what a
finished request reports to observers (``Served``, hook ``on_inference_done``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Metrics:
    prompt_eval_count: int = 0  # the prompt's tokens, cached or not (OpenAI's usage.prompt_tokens)
    prompt_eval_duration: int = 0  # nanoseconds
    eval_count: int = 0
    eval_duration: int = 0


@dataclass
class Chunk:
    """Text the client may see now, with the log-probabilities of the tokens behind it (each
    ``{"token", "logprob", "bytes"}``, and ``top_logprobs`` when asked for)."""

    text: str
    logprobs: list = field(default_factory=list)


@dataclass
class Done:
    reason: str  # "stop" or "length"
    metrics: Metrics
    context: list[int]  # the prompt's tokens and the answer's, for ``/api/generate``'s context


@dataclass
class Served:
    """One finished request that ran a model, as the inference service reports it."""

    model: str  # the stored model's name (``tiny:latest``)
    kind: str  # "chat", "generate", "embed", "rerank"
    metrics: Metrics  # its prompt's and answer's tokens, and the engine's time for each
    first_token_seconds: float | None = None  # from its arrival to its first answer token
