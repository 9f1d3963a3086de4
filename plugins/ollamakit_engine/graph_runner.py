"""A loaded model on the graph engine: the scheduler's ``Runner`` contract over ggml graphs.

Same contract as ``runner.Runner`` (``forward``, ``new_cache``, ``embed``, ``memory_bytes``...),
so the scheduler cannot tell the engines apart: it makes a cache per sequence and hands
``forward`` the new tokens of every ready sequence, prompt chunks and decode tokens mixed; the
runner packs them into steps of at most ``num_batch`` rows, one graph each.
"""

from __future__ import annotations

import logging
import threading
import weakref

import numpy as np
from ollamakit.lib.ggml.graph import Compute, Step, StepAborted

from ollamakit.errors import BadRequest, Cancelled

from .batching import RunnerBase, plan_steps
from .graph_cache import CACHE_TYPES, GraphKVCache, cache_bytes, splits_into_blocks
from .graph_model import GraphSegment, GraphTransformer
from .graph_weights import MappedWeights, model_tensors
from .hparams import HParams

log = logging.getLogger("ollamakit.engine")

DEFAULT_NUM_BATCH = 512
KEPT_GRAPHS = 8  # decode graphs kept for reuse (a few MiB each at most)


class GraphRunner(RunnerBase):
    def __init__(
        self,
        *,
        hp: HParams,
        weights: MappedWeights,
        backend,
        metadata: dict,
        tokenizer=None,
        num_batch: int = DEFAULT_NUM_BATCH,
        threads: int | None = None,
        cache_type: str = "f16",
        adapter=None,
        dense_prefill: bool = False,
    ):
        if num_batch < 1:
            raise BadRequest(f"num_batch must be positive, got {num_batch}")
        if cache_type not in CACHE_TYPES:
            raise BadRequest(f"unknown cache type {cache_type!r}; known: {', '.join(CACHE_TYPES)}")
        if not splits_into_blocks(hp, cache_type):  # as Ollama: the model's cache type instead
            log.warning("kv cache type %s does not fit this model's heads; using f16", cache_type)
            cache_type = "f16"
        self.hp = hp
        self.metadata = metadata
        self.tokenizer = tokenizer
        self.backend = backend
        self.lib = backend.lib
        self.weights = weights  # holds the mapping (and the tensors in it) alive
        self.tensors = model_tensors(weights, hp)
        self.model = GraphTransformer(
            hp,
            self.tensors,
            self.lib,
            quantized_cache=cache_type not in ("f16", "f32"),
            dense_prefill=dense_prefill,
        )
        self.adapter = adapter  # a LoraWeights, applied beside the base weights it names
        if adapter is not None:
            self.model.lora = adapter.by_weight
        self.num_batch = num_batch
        # Ollama's num_thread, else the backend's default; no more than the cores it may use
        self.threads = backend.pool_size(threads or backend.default_threads)
        self.cache_type = cache_type
        self.compute = Compute(self.lib, backend.threadpool(self.threads), self.threads)
        self.context_length = hp.n_ctx_train
        self.vocab_size = self.tensors.vocab_size
        self._weights_bytes = (
            weights.nbytes + weights.derived_nbytes + (adapter.nbytes if adapter is not None else 0)
        )
        self._caches: weakref.WeakSet[GraphKVCache] = weakref.WeakSet()
        self._graphs: dict[
            tuple, tuple
        ] = {}  # decode graphs by their caches and spans, oldest first
        self._lock = threading.Lock()  # one step at a time: steps share the allocator
        self._closed = False
        self.tokens_fed = 0  # tokens evaluated by forward, all sequences together (for tests)

    def cache_bytes(self, num_ctx: int) -> int:
        """Bytes one sequence's cache of ``num_ctx`` takes (sliding-window layers keep a ring of
        their window and a step, whatever ``num_ctx`` is)."""
        return cache_bytes(self.hp, num_ctx, self.num_batch, self.cache_type)

    def new_cache(self, num_ctx: int) -> GraphKVCache:
        cache = GraphKVCache(
            self.lib, self.hp, num_ctx, self.cache_type, self._rotate, self.num_batch
        )
        self._caches.add(cache)
        return cache

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self, batch: list[tuple[GraphKVCache, list[int]]], should_stop=None
    ) -> list[np.ndarray]:
        """Append each sequence's tokens to its cache; return float32 logits (vocab,) of each
        sequence's last token. ``should_stop()`` is asked between the operations of a prompt
        step (a decode step is one token's work) and ends the pass by raising ``Cancelled``;
        the caches then keep what they held before it."""
        self._check(batch)
        results: list = [None] * len(batch)
        with self._lock:
            for segments, owners in self._plan(batch):
                if should_stop is not None and should_stop():
                    raise Cancelled("request canceled")
                prompt = sum(len(s.tokens) for s in segments) > len(segments)
                self.compute.set_abort(should_stop if prompt else None)
                try:
                    logits = self._run(segments)
                except StepAborted:
                    raise Cancelled("request canceled") from None
                self.tokens_fed += sum(len(s.tokens) for s in segments)
                for row, owner in enumerate(owners):
                    if owner is not None:  # this segment ends its sequence's tokens
                        results[owner] = logits[row]
        return results

    def _run(self, segments: list[GraphSegment], hidden: bool = False) -> np.ndarray:
        values = self.model.inputs(segments, hidden)
        total = sum(len(s.tokens) for s in segments)
        rows = total if hidden else len(segments)
        width = self.hp.n_embd if hidden else self.vocab_size
        if hidden or total != len(segments):  # a prompt: built for this step only
            step = self.compute.step(self.model.nodes(len(segments)))
            try:
                out = self.model.build(step, segments, values, hidden)
                self.compute.run(step)
                result = self.compute.read(out, rows, width)
            finally:
                step.close()
        else:
            step, out = self._decode_graph(segments, values)
            self.compute.run(step)
            result = self.compute.read(out, rows, width)
        for s in segments:
            s.cache.n_past = s.stop
        return result

    def _decode_graph(self, segments, values):
        """The graph of a decode step (one token per sequence), kept for the steps after it:
        while the same caches decode within the same attention spans only the inputs change.
        Building a graph costs about as much Python as a small model's whole step."""
        key = tuple((s.cache.serial, self.model.spans(s)) for s in segments)
        kept = self._graphs.pop(key, None)
        if kept is not None:
            kept[0].refill(values)
        else:
            step = Step(self.lib, self.model.nodes(len(segments)))
            kept = (step, self.model.build(step, segments, values))
            self.compute.keep(step)
            while len(self._graphs) >= KEPT_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))[0].close()  # the least recently used
        self._graphs[key] = kept
        return kept

    def _plan(self, batch):
        """Steps of at most ``num_batch`` rows; each yields its segments and, per segment, the
        index of the sequence it finishes (or None)."""
        for parts in plan_steps(batch, self.num_batch):
            yield (
                [GraphSegment(cache, tokens, start, row) for cache, tokens, start, row, _ in parts],
                [p[4] for p in parts],
            )

    # -- context shift -------------------------------------------------------------------------

    def _rotate(self, cache: GraphKVCache, runs, delta: int) -> None:
        """Rotate the keys of each run of cells, (layer, first cell, count), by ``delta``
        positions, in place (by zero: only where rope scales what it rotates, see
        ``graph_cache``)."""
        from ollamakit.lib.ggml import lib as L

        hp = self.hp
        if not delta:
            runs = [r for r in runs if self.model.rope_magnitude(hp.swa_layers[r[0]]) != 1.0]
        if not runs:
            return
        with self._lock:
            step = self.compute.step(16 * len(runs) + 16)
            try:
                deltas = {}  # one positions input per run length
                # latent attention: a row's rope key follows its latent; a float16 cache's is
                # rotated in place, a quantized one's whole rows (ggml writes whole blocks only)
                skip = hp.kv_lora_rank if cache.ggml_type == L.TYPE_F16 else 0
                offset = self.lib.ggml_row_size(cache.ggml_type, skip)
                factors = self.model.factors(cache.num_ctx)
                for index, first, count in runs:
                    if count not in deltas:
                        deltas[count] = step.input(np.full(count, delta, np.int32), L.TYPE_I32)
                    layer, k_row = hp.layer(index), cache.k_row[index]
                    view = step.op(
                        "view_3d",
                        cache.keys[index],
                        layer.head_dim - skip,
                        layer.n_head_kv,
                        count,
                        cache.k_head[index],
                        k_row,
                        first * k_row + offset,
                    )
                    step.expand(
                        step.op(
                            "cpy", self._rotated(step, view, deltas[count], index, factors), view
                        )
                    )
                self.compute.run(step)
            finally:
                step.close()

    def _rotated(self, step, view, positions, index: int, factors):
        """Keys of layer ``index`` rotated by ``positions`` (with the sequence's rope
        ``factors``): quantized ones in float32, out of (and back into) their Hadamard
        rotation."""
        from ollamakit.lib.ggml import lib as L

        local = self.hp.swa_layers[index]
        if L.tensor(view).type == L.TYPE_F16:
            return self.model.rope(step, view, positions, local, factors)
        keys = step.op("cast", view, L.TYPE_F32)
        rot_k = self.model.rot_k[index]
        keys = self.model.rotate(step, keys, rot_k) if rot_k else keys
        skip = self.hp.kv_lora_rank
        if skip:  # latent attention's whole rows: the rope key after the latent alone
            s = L.tensor(keys)
            latent = step.op("view_3d", keys, skip, s.ne[1], s.ne[2], s.nb[1], s.nb[2], 0)
            pe = step.op(
                "view_3d", keys, s.ne[0] - skip, s.ne[1], s.ne[2], s.nb[1], s.nb[2], skip * 4
            )
            return step.op(
                "concat", latent, self.model.rope(step, pe, positions, local, factors), 0
            )
        rotated = self.model.rope(step, keys, positions, local, factors)
        return self.model.rotate(step, rotated, rot_k) if rot_k else rotated

    # -- embeddings ----------------------------------------------------------------------------

    def hidden_states(self, tokens: list[int]) -> np.ndarray:
        """Every row's final hidden state after the output norm (rows, n_embd), for a sequence
        of its own."""
        if not tokens:
            raise BadRequest("cannot embed an empty input")
        cache = GraphKVCache(self.lib, self.hp, len(tokens), self.cache_type)
        try:
            self._check([(cache, tokens)])
            with self._lock:
                return np.concatenate(
                    [
                        self._run(segments, hidden=True)
                        for segments, _ in self._plan([(cache, tokens)])
                    ]
                )
        finally:
            cache.close()

    def embed(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Hidden states after the output norm, pooled per the model's pooling type (the mean for
        causal models that declare none, as Ollama embeds with them). Not normalised."""
        results = []
        for tokens in batch:
            states = self.hidden_states(tokens)
            pooling = self.hp.pooling
            if pooling == "cls":
                pooled = states[0]
            elif pooling == "last":
                pooled = states[-1]
            else:
                pooled = states.mean(axis=0)
            results.append(np.ascontiguousarray(pooled, dtype=np.float32))
        return results

    def close(self) -> None:
        """Drop the caches and the mapping so their memory can be reclaimed."""
        self._closed = True
        with self._lock:
            for step, _ in self._graphs.values():
                step.close()
            self._graphs = {}
            self.compute.close()
            if self.adapter is not None:
                self.adapter.close()
        if getattr(self, "vision", None) is not None:  # attached after loading (vision.py)
            self.vision.close()
        self._caches = weakref.WeakSet()
