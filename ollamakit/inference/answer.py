"""Running a prompt and reading its answer: the format's constraint and the template's output
parser, built together (the constraint opens where the parser's thinking closes), the sequence
on the leased model, and the final chunk's metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import Cancelled, OllamaError
from ..events import Chunk, Done, Metrics, Served
from ..interfaces import Lease, Tokenizer
from ..lib import structured
from ..lib.structured import Constraint, FormatSpec, OutputParser, Parsed
from ..store import LocalModel, format_utc_now
from .requests import Common


@dataclass
class Answer:
    """How one answer is held and read: ``constraint`` masks the logits while it is sampled
    (on the scheduler's thread), ``parser`` splits thinking and tool calls out of its text (on
    the request's). None for either: the answer is free, or passes as it is."""

    constraint: Constraint | None
    parser: OutputParser | None

    @classmethod
    def build(
        cls,
        lease: Lease,
        spec: FormatSpec | None,
        parser: OutputParser | None,
        *,
        free_thinking: bool = True,
    ) -> Answer:
        """The answer to ``spec`` (a ``format``; None without one) read by ``parser``: a
        thinking model's text is free until its closing tag, then held to the format (with
        ``free_thinking`` false, held from the first token)."""
        if spec is None:
            return cls(None, parser)
        thinking = parser.thinking if free_thinking and parser else None
        closing = thinking.closing if thinking else None
        if closing:
            spec = spec.with_preamble(closing)
        try:
            return cls(Constraint(spec, lease.tokenizer, lease.runner.vocab_size), parser)
        except ValueError as exc:
            raise OllamaError(f"this model cannot use format: {exc}") from None

    def read(
        self, events: Iterator[Chunk | Done], report: Report | None = None
    ) -> Iterator[tuple[Parsed, list] | Done]:
        """A sequence's events with their text put through the parser: ``(Parsed, logprobs)``
        for each piece worth sending, the tail the parser held back, then the ``Done``; each
        told to ``report``."""
        parser = self.parser
        for event in events:
            if isinstance(event, Chunk):
                if report is not None and report.first_token is None:
                    report.first_token = time.perf_counter_ns()
                parsed = parser.feed(event.text) if parser else Parsed(event.text)
                if parsed or event.logprobs or not parser:
                    yield parsed, event.logprobs
                continue
            tail = parser.flush() if parser else None
            if tail:
                yield tail, []
            if report is not None:
                report.done(event.metrics)
            yield event


class Report:
    """What one request tells the observers of ``on_inference_done`` (metrics) once its answer
    is done; ``started``: when it arrived (``perf_counter_ns``)."""

    def __init__(self, kernel, model: LocalModel, kind: str, started: int):
        self.kernel, self.model, self.kind, self.started = kernel, model, kind, started
        self.first_token: int | None = None

    def done(self, metrics: Metrics) -> None:
        first = self.first_token
        served = Served(
            self.model.short_name,
            self.kind,
            metrics,
            None if first is None else (first - self.started) / 1e9,
        )
        self.kernel.observe(self.kernel.hook.on_inference_done, served=served)


def parse_format(value) -> FormatSpec | None:
    """``"json"``, a JSON Schema object, or nothing: a checked ``FormatSpec`` or None. Any other
    string is a 500 as in Ollama; a schema that cannot be enforced is a 400."""
    return structured.parse_format(value)


def run(
    lease: Lease,
    tokens: list[int],
    common: Common,
    answer: Answer,
    gone=None,
    report: Report | None = None,
):
    """Start the prompt ``tokens`` on the leased model; yield its parsed pieces and ``Done``
    (``Answer.read``), telling ``report``. Closing this generator, or ``gone()`` saying the
    client went away, cancels the sequence at once."""
    if gone is not None and gone():  # it left while the prompt was prepared: take no slot
        raise Cancelled("client disconnected")
    preserved = preserved_token_ids(lease.tokenizer, answer.parser)
    sequence = lease.start(
        tokens,
        shift=common.shift,
        truncate=common.truncate,
        logprobs=common.logprobs,
        # Ollama reads top_logprobs only when logprobs is asked for
        top_logprobs=common.top_logprobs if common.logprobs else 0,
        constraint=answer.constraint,
        **({"preserved_tokens": preserved} if preserved else {}),
    )
    events = sequence.events(gone)
    try:
        yield from answer.read(events, report)
    finally:
        events.close()


def preserved_token_ids(tokenizer: Tokenizer, parser: OutputParser | None) -> frozenset[int]:
    """The tokens whose text the parser must see: each of its preserved texts that the
    vocabulary holds as one token (llama-server's rule for Ollama's ``preserved_tokens``).
    A control token adds no text to the answer otherwise, so a parser whose tags are control
    tokens (harmony's ``<|channel|>``, Mistral's ``[TOOL_CALLS]``) would never find them."""
    ids = set()
    for text in parser.preserved_tokens if parser else ():
        encoded = tokenizer.encode(text, add_special=False, parse_special=True)
        if len(encoded) == 1:
            ids.add(encoded[0])
    return frozenset(ids)


def nanoseconds_since(start: int) -> int:
    return max(1, time.perf_counter_ns() - start)


def metrics(done: Done, started: int, load_ns: int) -> dict:
    """The final chunk's counts and durations (integer nanoseconds); zeros are left out."""
    values = {
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
        "prompt_eval_count": done.metrics.prompt_eval_count,
        "prompt_eval_duration": done.metrics.prompt_eval_duration,
        "eval_count": done.metrics.eval_count,
        "eval_duration": done.metrics.eval_duration,
    }
    return {k: int(v) for k, v in values.items() if v}


def base(model_name: str) -> dict:
    return {"model": model_name, "created_at": format_utc_now()}


def debug_info(rendered: str, images: int) -> dict:
    """``_debug_render_only``'s answer: the prompt, and the images sent with it when any."""
    info: dict = {"rendered_template": rendered}
    if images:
        info["image_count"] = images
    return info
