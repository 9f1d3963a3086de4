"""BERT encoders for embeddings and reranking, as llama.cpp's ``bert`` graph runs them:

* ``bert`` (sentence-transformers' models): learned absolute positions, separate q/k/v with
  biases, exact (erf) GELU;
* ``nomic-bert`` (nomic-embed-text): rotary positions (NeoX halves), a fused qkv projection,
  SwiGLU, no biases.

Both are post-norm with bidirectional attention, then the model's pooling (mean, CLS or last
token) and, when the model says so, L2 normalisation. Pooling type ``rank`` makes a cross-encoder:
the [CLS] row through the classifier head (``cls``, tanh, ``cls.output``) gives one score per
input, as llama.cpp's rank pooling does.

A batch of inputs runs together: inputs are sorted by length and split into groups of similar
length, so each projection is one large matrix product. Here, on the array backends, a group runs
padded to its longest input, with a key mask that keeps every input from seeing another's
padding; on ggml, ``graph_bert`` runs it as one graph over the file's own tensors, without
padding. Registered as its own ``load_model`` implementation (``bert_plugin``, entry point
``engine_bert``), beside the decoder engine.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.interfaces import Runner

from .bert_plugin import ARCHITECTURES
from .hparams import MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, POOLING, Metadata

_POOLING = {**POOLING, 4: "rank"}
MAX_TOKEN_TYPES = 1 << 16

GROUP_ROWS = 4096  # padded rows per group: large enough for BLAS, small enough for the cache
# GELU runs over this many rows at a time, so its many element-wise steps work in the CPU cache
# instead of streaming the wide activations through memory each time. The matrix products stay
# whole: multi-threaded BLAS pays a synchronisation per call, which small calls cannot amortise.
GELU_ROWS = 128

# Abramowitz & Stegun 7.1.26: erf to within 1.5e-7, far below float32 rounding of activations.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@dataclass(frozen=True)
class BertParams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_ctx_train: int
    norm_eps: float
    pooling: str
    normalize: bool
    arch: str = "bert"
    rope_base: float = 0.0  # rotary positions (nomic-bert) when positive, else learned ones
    n_rot: int = 0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def read_params(metadata: dict) -> BertParams:
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise InvalidModelFile(f"{arch!r} is not a BERT architecture")
    m = Metadata(metadata, arch)
    n_embd = m.int("embedding_length")
    n_head = m.int("attention.head_count", high=MAX_HEADS)
    if n_embd % n_head:
        raise InvalidModelFile(f"{arch}: width {n_embd} does not split into {n_head} heads")
    if m.raw("attention.causal", False):
        raise InvalidModelFile(f"{arch}: causal attention is not supported for BERT models")
    pooling = _POOLING.get(m.raw("pooling_type", 2), None)
    if pooling not in ("mean", "cls", "last", "rank"):
        raise InvalidModelFile(f"{arch}: pooling type {m.raw('pooling_type')!r} is not supported")
    rope = {}
    if arch == "nomic-bert":
        head_dim = n_embd // n_head
        n_rot = m.int("rope.dimension_count", head_dim, high=head_dim)
        if n_rot % 2:
            raise InvalidModelFile(f"{arch}.rope.dimension_count = {n_rot} is odd")
        rope = {"rope_base": m.positive_float("rope.freq_base", 10000.0), "n_rot": n_rot}
        if m.float("rope.scaling.factor", 0.0) not in (0.0, 1.0):
            raise InvalidModelFile(f"{arch}: rope scaling is not supported")
    return BertParams(
        arch=arch,
        **rope,
        n_layer=m.int("block_count", high=MAX_LAYERS),
        n_embd=n_embd,
        n_ff=m.int("feed_forward_length"),
        n_head=n_head,
        n_ctx_train=m.int("context_length", high=MAX_CONTEXT),
        norm_eps=m.positive_float("attention.layer_norm_epsilon", 1e-12),
        pooling=pooling,
        normalize=bool(m.raw("normalize_embeddings", False)) and pooling != "rank",
    )


@dataclass
class BertLayer:
    qkv: object  # (3 * d, d): q, k and v stacked
    qkv_bias: object  # None where the model has no biases (nomic-bert)
    attn_out: object
    attn_out_bias: object
    attn_norm: tuple  # (weight, bias)
    up: object
    up_bias: object
    gate: object  # SwiGLU's gate (nomic-bert); None for GELU
    down: object
    down_bias: object
    out_norm: tuple


class BertWeights:
    def __init__(self, gguf, p: BertParams, xp):
        self.xp = xp
        self.nbytes = 0
        self._names = {t if isinstance(t, str) else t.name for t in gguf.tensors}
        d, ff = p.n_embd, p.n_ff
        embd = self._array(gguf, "token_embd.weight", None)
        if embd.ndim != 2 or embd.shape[1] != d:
            raise InvalidModelFile(
                f"tensor token_embd.weight has shape {embd.shape}, expected (vocab, {d})"
            )
        self.vocab_size = embd.shape[0]
        self.token_embd = self._place(embd)
        self.position_embd = None
        if not p.rope_base:
            self.position_embd = self._place(
                self._array(gguf, "position_embd.weight", (p.n_ctx_train, d))
            )
        types = self._optional(gguf, "token_types.weight", None)
        if types is not None and (
            types.ndim != 2 or types.shape[1] != d or not 0 < types.shape[0] <= MAX_TOKEN_TYPES
        ):
            raise InvalidModelFile(
                f"tensor token_types.weight has shape {types.shape}, expected (types, {d})"
            )
        self.token_types = self._place(types) if types is not None else None
        self.embd_norm = self._norm(gguf, "token_embd_norm", d)
        self.layers = [self._layer(gguf, f"blk.{i}.", d, ff) for i in range(p.n_layer)]
        self.cls = self.cls_bias = self.cls_out = self.cls_out_bias = None
        if p.pooling == "rank":
            self._classifier(gguf, d)

    def _layer(self, gguf, b: str, d: int, ff: int) -> BertLayer:
        if f"{b}attn_qkv.weight" in self._names:
            qkv = self._array(gguf, f"{b}attn_qkv.weight", (3 * d, d))
            qkv_bias = self._optional(gguf, f"{b}attn_qkv.bias", (3 * d,))
        else:
            qkv = np.concatenate([self._array(gguf, f"{b}attn_{x}.weight", (d, d)) for x in "qkv"])
            biases = [self._optional(gguf, f"{b}attn_{x}.bias", (d,)) for x in "qkv"]
            qkv_bias = (
                None
                if all(x is None for x in biases)
                else np.concatenate(
                    [x if x is not None else np.zeros(d, np.float32) for x in biases]
                )
            )
        return BertLayer(
            qkv=self._place(qkv),
            qkv_bias=self._maybe(qkv_bias),
            attn_out=self._place(self._array(gguf, f"{b}attn_output.weight", (d, d))),
            attn_out_bias=self._maybe(self._optional(gguf, f"{b}attn_output.bias", (d,))),
            attn_norm=self._norm(gguf, f"{b}attn_output_norm", d),
            up=self._place(self._array(gguf, f"{b}ffn_up.weight", (ff, d))),
            up_bias=self._maybe(self._optional(gguf, f"{b}ffn_up.bias", (ff,))),
            gate=self._maybe(self._optional(gguf, f"{b}ffn_gate.weight", (ff, d))),
            down=self._place(self._array(gguf, f"{b}ffn_down.weight", (d, ff))),
            down_bias=self._maybe(self._optional(gguf, f"{b}ffn_down.bias", (d,))),
            out_norm=self._norm(gguf, f"{b}layer_output_norm", d),
        )

    def _classifier(self, gguf, d: int) -> None:
        """The rank head: an optional dense layer (BERT's pooler, RoBERTa's classifier.dense),
        then the projection to the scores, present in every reranker but jina's v1."""
        self.cls = self._maybe(self._optional(gguf, "cls.weight", (d, d)))
        self.cls_bias = self._maybe(self._optional(gguf, "cls.bias", (d,)))
        out = self._optional(gguf, "cls.output.weight", None)
        if out is not None:
            if out.ndim != 2 or out.shape[1] != d or not 0 < out.shape[0] <= MAX_TOKEN_TYPES:
                raise InvalidModelFile(
                    f"tensor cls.output.weight has shape {out.shape}, expected (labels, {d})"
                )
            self.cls_out = self._place(out)
            self.cls_out_bias = self._maybe(
                self._optional(gguf, "cls.output.bias", (out.shape[0],))
            )
        if self.cls is None and self.cls_out is None:
            raise InvalidModelFile(
                "a rank model needs a classifier head (cls.weight or cls.output.weight)"
            )

    def _array(self, gguf, name: str, shape) -> np.ndarray:
        if name not in self._names:
            raise InvalidModelFile(f"model file lacks tensor {name}")
        data = np.asarray(gguf.tensor(name), dtype=np.float32)
        if shape is not None:
            if data.size != math.prod(shape):
                raise InvalidModelFile(f"tensor {name} has shape {data.shape}, expected {shape}")
            data = data.reshape(shape)
        return data

    def _optional(self, gguf, name: str, shape):
        return self._array(gguf, name, shape) if name in self._names else None

    def _place(self, array: np.ndarray):
        placed = self.xp.ascontiguousarray(self.xp.asarray(array), dtype=self.xp.float32)
        self.nbytes += placed.nbytes
        return placed

    def _maybe(self, array):
        return None if array is None else self._place(array)

    def _norm(self, gguf, name: str, d: int) -> tuple:
        return self._place(self._array(gguf, f"{name}.weight", (d,))), self._place(
            self._array(gguf, f"{name}.bias", (d,))
        )


class BertEncoder:
    """The forward pass over padded groups of inputs."""

    def __init__(self, p: BertParams, w: BertWeights, backend):
        self.p, self.w, self.xp = p, w, backend.xp
        self.to_numpy = backend.to_numpy

    def layer_norm(self, x, norm):
        xp = self.xp
        x -= x.mean(axis=-1, keepdims=True)
        variance = xp.einsum("...i,...i->...", x, x)[..., None]
        variance *= 1.0 / x.shape[-1]
        variance += self.p.norm_eps
        x /= xp.sqrt(variance, out=variance)
        x *= norm[0]
        x += norm[1]
        return x

    def gelu(self, x):
        """x * Phi(x) in place, with Phi(z) = (1 + erf(z / sqrt 2)) / 2."""
        xp = self.xp
        z = x * np.float32(1 / math.sqrt(2))
        # Beyond |z| = 9, erf is +-1 to float32 precision; clipping keeps exp(-z^2) and the
        # result out of the subnormal range, where every later multiply runs many times slower.
        xp.clip(z, -9.0, 9.0, out=z)
        t = xp.abs(z)
        t *= np.float32(_ERF_P)
        t += 1.0
        xp.reciprocal(t, out=t)
        tail = t * np.float32(_ERF_A[4])  # the polynomial; times exp(-z^2) it is 1 - erf|z|
        for a in reversed(_ERF_A[:4]):
            tail += np.float32(a)
            tail *= t
        xp.square(z, out=t)
        xp.negative(t, out=t)
        xp.exp(t, out=t)
        tail *= t
        tail *= -0.5
        tail += 0.5  # erf|z| / 2
        xp.copysign(tail, z, out=tail)  # erf(z) / 2
        tail += 0.5
        x *= tail
        return x

    def feed_forward(self, x, layer):
        xp = self.xp
        h = xp.dot(x, layer.up.T)
        if layer.up_bias is not None:
            h += layer.up_bias
        if layer.gate is not None:  # SwiGLU: silu(gate x) * up x
            g = xp.dot(x, layer.gate.T)
            h *= g
            xp.negative(g, out=g)
            xp.minimum(
                g, np.float32(80.0), out=g
            )  # exp stays finite; silu(x < -80) is 0 in float32
            xp.exp(g, out=g)
            g += 1.0
            h /= g
        else:
            for start in range(0, h.shape[0], GELU_ROWS):
                self.gelu(h[start : start + GELU_ROWS])
        out = xp.dot(h, layer.down.T)
        if layer.down_bias is not None:
            out += layer.down_bias
        return out

    def rotary(self, length: int):
        """cos and sin (length, n_rot / 2) of the NeoX rotation at positions 0..length-1."""
        p = self.p
        inv_freq = p.rope_base ** (-np.arange(0, p.n_rot, 2, dtype=np.float64) / p.n_rot)
        angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
        return self.xp.asarray(np.cos(angles).astype(np.float32)), self.xp.asarray(
            np.sin(angles).astype(np.float32)
        )

    def rotate(self, x, cos, sin):
        """NeoX rotary positions on (batch, heads, length, head_dim): the first n_rot values
        turn as pairs (i, i + n_rot / 2)."""
        half = self.p.n_rot // 2
        x1, x2 = x[..., :half], x[..., half : 2 * half]
        turned = self.xp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        if 2 * half == x.shape[-1]:
            return turned
        return self.xp.concatenate([turned, x[..., 2 * half :]], axis=-1)

    def run(self, ids: np.ndarray, lengths: np.ndarray, types: np.ndarray | None = None):
        """Final hidden states (batch, length, d) for padded ``ids`` (batch, length), with
        segment ``types`` of the same shape (all 0 when None)."""
        xp, p, w = self.xp, self.p, self.w
        batch, length = ids.shape
        d, heads, hd = p.n_embd, p.n_head, p.head_dim
        x = xp.take(w.token_embd, xp.asarray(ids.reshape(-1)), axis=0)
        x = x.reshape(batch, length, d)
        if w.position_embd is not None:
            x += w.position_embd[:length]
        if w.token_types is not None:
            if types is None:
                x += w.token_types[0]
            else:
                x += xp.take(w.token_types, xp.asarray(types.reshape(-1)), axis=0).reshape(
                    batch, length, d
                )
        x = self.layer_norm(x.reshape(batch * length, d), w.embd_norm)
        rotary = self.rotary(length) if p.rope_base else None
        # Keys past each input's end are masked out of every row's softmax.
        mask = np.where(np.arange(length)[None, :] < lengths[:, None], 0.0, -np.inf).astype(
            np.float32
        )
        keep = xp.asarray(np.isfinite(mask).astype(np.float32))[:, None, None, :]
        mask = xp.asarray(mask)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for layer in w.layers:
            qkv = xp.dot(x, layer.qkv.T)
            if layer.qkv_bias is not None:
                qkv += layer.qkv_bias
            qkv = qkv.reshape(batch, length, 3, heads, hd).transpose(
                2, 0, 3, 1, 4
            )  # (3, b, h, l, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
            if rotary is not None:
                q, k = self.rotate(q, *rotary), self.rotate(k, *rotary)
            scores = xp.matmul(q, k.transpose(0, 1, 3, 2))
            scores *= scale
            scores += mask
            scores -= scores.max(axis=-1, keepdims=True)
            # Floor the exponents so no probability is subnormal (slow to multiply); padding
            # keys are then zeroed exactly by ``keep``.
            xp.maximum(scores, np.float32(-80.0), out=scores)
            xp.exp(scores, out=scores)
            scores *= keep
            scores /= scores.sum(axis=-1, keepdims=True)
            mixed = xp.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * length, d)
            out = xp.dot(mixed, layer.attn_out.T)
            if layer.attn_out_bias is not None:
                out += layer.attn_out_bias
            out += x
            x = self.layer_norm(out, layer.attn_norm)
            out = self.feed_forward(x, layer)
            out += x
            x = self.layer_norm(out, layer.out_norm)
        return x.reshape(batch, length, d)

    def pooled(self, inputs: list[list[int]], token_types: list[list[int]] | None):
        """One row per input: the pooled final states (before any normalisation), or a
        reranker's scores. The inputs run padded to the longest."""
        length = max(len(t) for t in inputs)
        ids = np.zeros((len(inputs), length), dtype=np.int64)
        types = np.zeros((len(inputs), length), dtype=np.int64) if token_types is not None else None
        for row, tokens in enumerate(inputs):
            ids[row, : len(tokens)] = tokens
            if types is not None:
                types[row, : len(tokens)] = token_types[row]
        lengths = np.array([len(t) for t in inputs])
        hidden = self.run(ids, lengths, types)
        if self.p.pooling == "rank":
            return np.asarray(self.to_numpy(self._rank(hidden[:, 0])), dtype=np.float32)
        hidden = self.to_numpy(hidden)
        rows = np.arange(len(lengths))
        if self.p.pooling == "mean":
            return np.stack(
                [hidden[row, :n].mean(axis=0, dtype=np.float64) for row, n in enumerate(lengths)]
            )
        if self.p.pooling == "cls":
            return hidden[:, 0].astype(np.float64)
        return hidden[rows, lengths - 1].astype(np.float64)

    def _rank(self, first):
        """The classifier head on each input's first ([CLS]) row: (batch, labels) scores."""
        xp, w = self.xp, self.w
        x = xp.ascontiguousarray(first)
        if w.cls is not None:
            x = xp.dot(x, w.cls.T)
            if w.cls_bias is not None:
                x += w.cls_bias
            x = xp.tanh(x)
        if w.cls_out is not None:
            x = xp.dot(x, w.cls_out.T)
            if w.cls_out_bias is not None:
                x += w.cls_out_bias
        return x


class BertRunner(Runner):
    """A loaded BERT model: ``embed`` only (it has no language-model head). ``encoder`` is
    ``BertEncoder`` (array backends) or ``graph_bert.GraphBertEncoder`` (ggml); either turns a
    group of inputs into one pooled row each."""

    def __init__(
        self,
        p: BertParams,
        encoder,
        *,
        vocab_size: int,
        type_count: int,
        memory_bytes: int,
        backend,
        tokenizer=None,
        metadata=None,
        close=None,
    ):
        self.p = p
        self.architecture = p.arch
        self.pooling = p.pooling
        self.backend = backend
        self.tokenizer = tokenizer
        self.metadata = metadata or {}
        self.encoder = encoder
        self.context_length = p.n_ctx_train
        self.vocab_size = vocab_size
        self.type_count = type_count
        self.memory_bytes = memory_bytes
        self._close = close
        self._lock = threading.Lock()  # the encoder already uses every core; one batch at a time
        self._closed = False

    def forward(self, batch, should_stop=None):
        raise BadRequest("this model only produces embeddings")

    def new_cache(self, num_ctx: int):
        raise BadRequest("this model only produces embeddings")

    def embed(
        self, batch: list[list[int]], token_types: list[list[int]] | None = None
    ) -> list[np.ndarray]:
        """One pooled vector (float32) per input, normalised when the model asks for it; for a
        rank model, its scores. ``token_types`` gives each token's segment (a cross-encoder's
        query is 0, its document 1); every token is in segment 0 without it."""
        if self._closed:
            raise RuntimeError("runner is closed")
        for tokens in batch:
            if not tokens:
                raise BadRequest("cannot embed an empty input")
            if len(tokens) > self.context_length:
                raise BadRequest(
                    f"input of {len(tokens)} tokens exceeds the context of {self.context_length}"
                )
            if min(tokens) < 0 or max(tokens) >= self.vocab_size:
                raise BadRequest(f"token id outside the vocabulary of {self.vocab_size}")
        if token_types is not None:
            if len(token_types) != len(batch) or any(
                len(t) != len(x) for t, x in zip(token_types, batch)
            ):
                raise BadRequest("token types do not match the inputs")
            if any(t and (min(t) < 0 or max(t) >= self.type_count) for t in token_types):
                raise BadRequest(f"token type outside the model's {self.type_count}")
        results: list = [None] * len(batch)
        with self._lock:
            for group in _groups(batch):
                types = [token_types[i] for i in group] if token_types is not None else None
                pooled = self._embed_group([batch[i] for i in group], types)
                for index, vector in zip(group, pooled):
                    results[index] = vector
        return results

    def _embed_group(
        self, inputs: list[list[int]], token_types: list[list[int]] | None
    ) -> list[np.ndarray]:
        pooled = self.encoder.pooled(inputs, token_types)
        if self.p.pooling == "rank":
            return [np.asarray(row, dtype=np.float32) for row in pooled]
        out = []
        for vector in pooled:
            vector = np.asarray(vector, dtype=np.float64)
            if self.p.normalize:
                norm = np.linalg.norm(vector)
                vector = vector / norm if norm > 0 else vector
            out.append(vector.astype(np.float32))
        return out

    def close(self) -> None:
        self._closed = True
        self.encoder = None
        if self._close is not None:
            self._close()


def _groups(batch: list[list[int]]) -> list[list[int]]:
    """Input indices in groups of similar length, each at most ``GROUP_ROWS`` padded rows."""
    order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
    groups, current = [], []
    for index in order:
        width = len(batch[index])  # the longest so far, since the order is ascending
        if current and (len(current) + 1) * width > GROUP_ROWS:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


def build_bert_runner(
    gguf, backend, tokenizer=None, options: dict | None = None, kernels=None
) -> BertRunner:
    """The encoder of ``gguf`` on ``backend``: as a ggml graph over the file's own blocks on a
    backend that runs graphs (``ggml``), as float32 arrays on the others. On ggml, ollamakit's
    float32 kernels run what they can where this CPU has them (``kernels`` False: never)."""
    p = read_params(gguf.metadata)
    common = {"backend": backend, "tokenizer": tokenizer, "metadata": dict(gguf.metadata)}
    if backend.runs_graphs:
        from ollamakit.lib.ggml.graph import Compute

        from .graph_bert import BertTensors, GraphBertEncoder, float32_kernels
        from .graph_weights import MappedWeights

        threads = (options or {}).get("num_thread") or backend.default_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise BadRequest(f"num_thread must be a non-negative integer, got {threads!r}")
        kernels = float32_kernels(backend.lib, p) if kernels is None else kernels or None
        weights = MappedWeights.open(gguf, backend.lib)
        tensors = BertTensors(p, weights, panels=kernels is not None)
        compute = Compute(backend.lib, backend.threadpool(threads), threads)
        return BertRunner(
            p,
            GraphBertEncoder(p, tensors, compute, kernels),
            vocab_size=tensors.vocab_size,
            type_count=tensors.type_count,
            memory_bytes=weights.nbytes + weights.derived_nbytes,
            close=compute.close,
            **common,
        )
    weights = BertWeights(gguf, p, backend.xp)
    return BertRunner(
        p,
        BertEncoder(p, weights, backend),
        vocab_size=weights.vocab_size,
        type_count=len(weights.token_types) if weights.token_types is not None else 1,
        memory_bytes=weights.nbytes,
        **common,
    )
