"""One request's generation: its prompt, sampler, text stream and metrics.

The batching worker drives a sequence (``next_input`` / ``accept``); the request's thread reads
its events (``events``). Everything the client sees is decided here, on the worker's thread, so
a stop sequence ends generation at the very token that completed it.
"""

from __future__ import annotations

import queue
import threading
import time

from ollamakit.errors import BadRequest, Cancelled
from ollamakit import interfaces
from ollamakit.events import Chunk, Done, Metrics
from ollamakit.images import whole_images

from ollamakit.options import Options
from .sampling import Sampler, token_logprobs
from .textstream import TextStream

# How often a request waiting for its next token asks whether its client is still there.
POLL_SECONDS = 0.1

PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten the prompt, "
    "adjust the context length in settings, or use a model with a longer context length"
)


def fit_prompt(tokens: list[int], num_ctx: int, num_keep: int, truncate: bool) -> list[int]:
    """A prompt longer than the window keeps its first ``num_keep`` tokens and its end, as
    Ollama's runner does; with ``truncate`` false that is a 400 instead."""
    if len(tokens) <= num_ctx:
        return tokens
    if not truncate:
        raise BadRequest(PROMPT_TOO_LONG)
    keep = max(0, min(num_keep if num_keep >= 0 else len(tokens), num_ctx - 1))
    return tokens[:keep] + tokens[len(tokens) - (num_ctx - keep) :]


class Sequence(interfaces.Sequence):
    def __init__(
        self,
        prompt: list[int],
        options: Options,
        num_ctx: int,
        tokenizer,
        *,
        shift: bool = True,
        truncate: bool = True,
        logprobs: bool = False,
        top_logprobs: int = 0,
        constraint=None,
        max_predict: int | None = None,
        preserved_tokens: frozenset[int] = frozenset(),
    ):
        if not prompt:
            raise BadRequest("prompt is empty after tokenization")
        self.num_ctx = num_ctx
        self.prompt = fit_prompt(list(prompt), num_ctx, options.num_keep, truncate)
        self.options = options
        self.tokenizer = tokenizer
        self.eog = frozenset(tokenizer.eog_ids)
        self.preserved = frozenset(preserved_tokens)  # control tokens sent as their text
        # num_predict as Ollama reads it. A count, shifting the window when it fills. -1 (any
        # negative) until a stop, shifting too, but never past ten windows' worth, Ollama's own
        # bound. -2 until the window is full: no shift. And never past ``max_predict``, the
        # server's ceiling, so no request holds its slot without end.
        fill = options.num_predict == -2
        self.shift = shift and not fill
        if fill:
            limit = num_ctx
        elif options.num_predict < 0:
            limit = 10 * num_ctx
        else:
            limit = options.num_predict
        self.limit = limit if max_predict is None else min(limit, max_predict)
        self.want_logprobs = logprobs or top_logprobs > 0
        self.top_logprobs = top_logprobs
        self.sampler = Sampler(options, num_ctx)
        # Structured outputs: masks the logits (``mask``), follows the answer (``advance``) and
        # says when it is whole (``complete``); see ollamakit.lib.structured.Constraint.
        self.constraint = constraint
        self.text = TextStream(options.stop)
        self.metrics = Metrics()

        self.history: list[int] = []  # tokens in this sequence's cache, in order
        self.pending: list[int] = []  # tokens still to feed the model
        self.generated: list[int] = []
        self.prefilling = True
        self.finished = False
        self._held_logprobs: list = []
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.started = threading.Event()
        self.on_start = None  # called once, on the worker's thread, when a slot is assigned
        self.on_cancel = None  # called on the request's thread when it gives up

    # -- the worker's side -----------------------------------------------------------------

    def begin(self, cached_prefix: int) -> None:
        """Assigned to a cache that already holds the first ``cached_prefix`` prompt tokens."""
        self.history = self.prompt[:cached_prefix]
        self.pending = self.prompt[cached_prefix:]
        # cached plus new, as Ollama counts it (its runner reports CacheN + PromptN): clients
        # read it as the prompt's size (OpenAI's usage.prompt_tokens), not as work done
        self.metrics.prompt_eval_count = len(self.prompt)
        self.started.set()
        if self.on_start:
            self.on_start()

    def next_input(self, batch_limit: int) -> list[int]:
        if not self.prefilling:
            return self.pending
        # an image's rows go to the model together (they attend to each other)
        return self.pending[: whole_images(self.pending, batch_limit) or batch_limit]

    def consumed(self, count: int) -> None:
        self.history.extend(self.pending[:count])
        del self.pending[:count]

    def shift_plan(self) -> tuple[int, int]:
        """(keep, discard) for a full window: keep ``num_keep`` tokens, drop half the rest."""
        n = len(self.history)
        keep = self.options.num_keep if self.options.num_keep >= 0 else len(self.prompt)
        keep = max(0, min(keep, n - 2))
        discard = max(1, (n - keep) // 2)
        return keep, discard

    def accept(self, logits, elapsed_ns: int) -> None:
        """The model's logits after the last input: sample, emit, maybe finish."""
        if self.prefilling:
            self.metrics.prompt_eval_duration += elapsed_ns
            self.prefilling = False
        else:
            self.metrics.eval_duration += elapsed_ns
        started = time.perf_counter_ns()
        candidates = self.constraint.mask(logits) if self.constraint else logits
        token = self.sampler.sample(candidates, self.history)
        if token in self.eog:
            self.metrics.eval_duration += time.perf_counter_ns() - started
            self.finish("stop")
            return
        if self.constraint:
            self.constraint.advance(token)
        self.generated.append(token)
        self.metrics.eval_count += 1
        if token in self.preserved:
            piece = self.tokenizer.token_text(token).encode("utf-8")
        else:
            piece = self.tokenizer.token_to_piece(token)
        if self.want_logprobs:
            self._held_logprobs.append(self._logprob_entry(logits, token, piece))
        text = self.text.push(piece)
        if text:
            self._emit(text)
        self.metrics.eval_duration += time.perf_counter_ns() - started
        if self.text.stopped or (self.constraint and self.constraint.complete):
            self.finish("stop")
        elif len(self.generated) >= self.limit:
            self.finish("length")
        else:
            self.pending = [token]

    def finish(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        tail = self.text.flush()
        if tail or self._held_logprobs:
            self._emit(tail)
        self._events.put(Done(reason, self.metrics, self.prompt + self.generated))

    def fail(self, error: BaseException) -> None:
        if not self.finished:
            self.finished = True
            self._events.put(error)

    def _emit(self, text: str) -> None:
        self._events.put(Chunk(text, self._held_logprobs))
        self._held_logprobs = []

    def _logprob_entry(self, logits, token: int, piece: bytes) -> dict:
        logprob, top = token_logprobs(logits, token, self.top_logprobs)
        entry = self._describe(token, logprob, piece)
        if self.top_logprobs:
            entry["top_logprobs"] = [self._describe(i, lp) for i, lp in top]
        return entry

    def _describe(self, token: int, logprob: float, piece: bytes | None = None) -> dict:
        piece = self.tokenizer.token_to_piece(token) if piece is None else piece
        return {"token": piece.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(piece)}

    # -- the request's side ------------------------------------------------------------------

    def events(self, gone=None):
        """Chunks, then one ``Done``; an engine error is raised. Closing the iterator early
        cancels the sequence, which frees its slot at the worker's next step. ``gone`` (a
        callable) says whether the client left: it is asked at every event and every
        ``POLL_SECONDS`` in between, and a yes cancels the sequence and raises ``Cancelled``."""
        try:
            while True:
                event = self._next_event(gone)
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Done):
                    return
        finally:
            self.cancel()

    def _next_event(self, gone):
        if gone is None:
            return self._events.get()
        while True:
            try:
                event = self._events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                event = None
            if gone():
                raise Cancelled("client disconnected")
            if event is not None:
                return event

    def cancel(self) -> None:
        if not self.finished:
            self.cancelled.set()
            if self.on_cancel:
                self.on_cancel()
