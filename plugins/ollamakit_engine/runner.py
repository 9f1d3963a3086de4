"""A loaded model: weights on a compute backend, its tokenizer, and the forward pass the scheduler
drives.

The scheduler owns sequences: it creates a ``KVCache`` per sequence (``new_cache``) and calls
``forward`` with the new tokens of every sequence that is ready, prompt chunks and decode tokens
mixed; the runner packs them into steps of at most ``num_batch`` rows.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref

import numpy as np

from ollamakit.errors import BadRequest, Cancelled

from .batching import RunnerBase, plan_steps
from .cache import KVCache, cache_bytes
from .hparams import HParams
from .model import Segment, Transformer
from .threads import ThreadChooser
from .weights import ModelWeights

DEFAULT_NUM_BATCH = 512
# Prompt steps of this many rows or more run as two parts on two cores (Transformer.step_in_two);
# shorter ones gained nothing in measurements (docs/performance.md).
SPLIT_PROMPT_ROWS = 512


class Runner(RunnerBase):
    def __init__(
        self,
        *,
        hp: HParams,
        weights: ModelWeights,
        ops,
        metadata: dict,
        tokenizer=None,
        num_batch: int = DEFAULT_NUM_BATCH,
        threads: int | None = None,
        choose_threads: bool = False,
    ):
        if num_batch < 1:
            raise BadRequest(f"num_batch must be positive, got {num_batch}")
        self.hp = hp
        self.metadata = metadata
        self.tokenizer = tokenizer
        self.ops = ops
        self.backend = ops.backend
        self.num_batch = num_batch
        self.threads = threads  # BLAS threads while this model computes; None: the backend's own
        # Without a num_thread of its own, the model measures whether every core or one is faster
        # now (threads.py); with one core there is nothing to choose.
        self._chooser = (
            ThreadChooser(threads) if choose_threads and threads and threads > 1 else None
        )
        self.model = Transformer(hp, weights, ops)
        self.context_length = hp.n_ctx_train
        self.vocab_size = weights.vocab_size
        self._weights_bytes = weights.nbytes
        self._caches: weakref.WeakSet[KVCache] = weakref.WeakSet()
        self._lock = threading.Lock()  # one step at a time: steps share the workspace
        self._closed = False

    def cache_bytes(self, num_ctx: int) -> int:
        """Bytes one sequence's cache of ``num_ctx`` takes once full (sliding-window layers keep
        a ring of their window, whatever ``num_ctx`` is)."""
        return cache_bytes(self.hp, num_ctx)

    def new_cache(self, num_ctx: int) -> KVCache:
        cache = KVCache(self.backend.xp, self.hp, num_ctx)
        self._caches.add(cache)
        return cache

    # -- forward -------------------------------------------------------------------------------

    def forward(self, batch: list[tuple[KVCache, list[int]]], should_stop=None) -> list[np.ndarray]:
        """Append each sequence's tokens to its cache; return float32 logits (vocab,) of each
        sequence's last token. ``should_stop()``, asked between steps, ends the pass early by
        raising ``Cancelled``."""
        self._check(batch)
        decoding = len(batch) if all(len(tokens) == 1 for _, tokens in batch) else None
        with self._lock:
            threads = self._chooser.pick(decoding) if self._chooser else None
            started = time.perf_counter()
            with self._computing(threads):
                last_hidden: list = [None] * len(batch)
                for segments, owners in self._plan(batch):
                    if should_stop is not None and should_stop():
                        raise Cancelled("request canceled")
                    hidden = self._step(segments, threads)  # a row per segment
                    for row, owner in enumerate(owners):
                        if owner is not None:  # this segment ends its sequence's tokens
                            last_hidden[owner] = hidden[row : row + 1].copy()
                stacked = self.backend.xp.concatenate(last_hidden, axis=0)
                logits = self.backend.to_numpy(self.model.logits(stacked))
            if self._chooser and decoding:
                self._chooser.record(threads, decoding, time.perf_counter() - started)
        return [np.ascontiguousarray(row, dtype=np.float32) for row in logits]

    def _step(self, segments: list[Segment], threads: int | None):
        """One step; a long prompt on the CPU as two parts at once (``Transformer.step_in_two``)
        when the model computes on two cores or more."""
        if (
            len(segments) == 1
            and len(segments[0].tokens) >= SPLIT_PROMPT_ROWS
            and (self._thread_count(threads) or 1) >= 2
            and self.ops.on_host
        ):
            with self.backend.threads(1):
                return self.model.step_in_two(segments[0])
        return self.model.step(segments, last_rows_only=True)

    def _computing(self, threads: int | None = None):
        """The thread count this model computes with (``threads``, else its current one), held
        for one pass."""
        threads = self._thread_count(threads)
        if threads is None:
            return contextlib.nullcontext()
        return self.backend.threads(threads)

    def _thread_count(self, threads: int | None) -> int | None:
        """``threads`` if given, else the count this model computes with now (None: the
        backend's own)."""
        return threads or (self._chooser.current if self._chooser else self.threads)

    def _plan(self, batch):
        """Steps of at most ``num_batch`` rows; each yields its segments and, per segment, the
        index of the sequence it finishes (or None)."""
        for parts in plan_steps(batch, self.num_batch):
            segments = [
                Segment(cache, tokens, start, slice(row, row + len(tokens)))
                for cache, tokens, start, row, _ in parts
            ]
            yield segments, [part[4] for part in parts]

    # -- embeddings ----------------------------------------------------------------------------

    def embed(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Hidden states after the output norm, pooled per the model's pooling type (the mean
        over the input for causal models that declare none, as Ollama embeds with them). Not
        normalised."""
        results = []
        for tokens in batch:
            if not tokens:
                raise BadRequest("cannot embed an empty input")
            cache = KVCache(self.backend.xp, self.hp, len(tokens))
            self._check([(cache, tokens)])
            pooled = self._embed_one(cache, tokens)
            results.append(
                np.ascontiguousarray(self.backend.to_numpy(pooled), dtype=np.float32).reshape(-1)
            )
        return results

    def _embed_one(self, cache: KVCache, tokens: list[int]):
        pooling = self.hp.pooling
        total, first_row = None, None
        with self._lock, self._computing():
            for segments, _ in self._plan([(cache, tokens)]):
                normed = self.model.normed(self.model.step(segments))
                if first_row is None:
                    first_row = normed[:1].copy()
                block_sum = normed.sum(axis=0, keepdims=True)
                total = block_sum if total is None else total + block_sum
                last_row = normed[-1:].copy()
        if pooling in ("mean", "none"):
            return total / len(tokens)
        if pooling == "cls":
            return first_row
        return last_row

    def close(self) -> None:
        """Drop the weights and caches so their memory can be reclaimed."""
        self._closed = True
        self.model = None
        self._caches = weakref.WeakSet()
