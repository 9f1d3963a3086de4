"""BERT encoders for embeddings (``general.architecture = bert``), as sentence-transformers runs
them: learned absolute positions, post-norm blocks, exact (erf) GELU, bidirectional attention,
then the model's pooling (mean, CLS or last token) and, when the model says so, L2 normalisation.

A batch of inputs runs together: inputs are sorted by length and packed into padded groups of
similar length, so each projection is one large matrix product and padding stays small; a key
mask keeps every input from seeing another's padding. Registered as its own ``load_model``
implementation (``bert_plugin``, entry point ``engine_bert``), beside the decoder engine.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import BadRequest, InvalidModelFile

from .hparams import MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, POOLING, Metadata

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

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def read_params(metadata: dict) -> BertParams:
    m = Metadata(metadata, "bert")
    n_embd = m.int("embedding_length")
    n_head = m.int("attention.head_count", high=MAX_HEADS)
    if n_embd % n_head:
        raise InvalidModelFile(f"bert: width {n_embd} does not split into {n_head} heads")
    if m.raw("attention.causal", False):
        raise InvalidModelFile("bert: causal attention is not supported for BERT models")
    pooling = POOLING.get(m.raw("pooling_type", 2), None)
    if pooling not in ("mean", "cls", "last"):
        raise InvalidModelFile(f"bert: pooling type {m.raw('pooling_type')!r} is not supported")
    return BertParams(
        n_layer=m.int("block_count", high=MAX_LAYERS),
        n_embd=n_embd,
        n_ff=m.int("feed_forward_length"),
        n_head=n_head,
        n_ctx_train=m.int("context_length", high=MAX_CONTEXT),
        norm_eps=m.positive_float("attention.layer_norm_epsilon", 1e-12),
        pooling=pooling,
        normalize=bool(m.raw("normalize_embeddings", False)),
    )


@dataclass
class BertLayer:
    qkv: object  # (3 * d, d)
    qkv_bias: object
    attn_out: object
    attn_out_bias: object
    attn_norm: tuple  # (weight, bias)
    up: object
    up_bias: object
    down: object
    down_bias: object
    out_norm: tuple


class BertWeights:
    def __init__(self, gguf, p: BertParams, xp):
        self.xp = xp
        self.nbytes = 0
        d, ff = p.n_embd, p.n_ff
        embd = self._array(gguf, "token_embd.weight", None)
        if embd.ndim != 2 or embd.shape[1] != d:
            raise InvalidModelFile(f"tensor token_embd.weight has shape {embd.shape}, expected (vocab, {d})")
        self.vocab_size = embd.shape[0]
        self.token_embd = self._place(embd)
        self.position_embd = self._place(self._array(gguf, "position_embd.weight", (p.n_ctx_train, d)))
        types = self._array(gguf, "token_types.weight", None)
        if types.ndim != 2 or types.shape[1] != d:
            raise InvalidModelFile(f"tensor token_types.weight has shape {types.shape}, expected (types, {d})")
        # Every input is a single segment (type 0), so its embedding is a constant row.
        self.embd_bias = self._place(types[0])
        self.embd_norm = self._norm(gguf, "token_embd_norm", d)
        self.layers = []
        for i in range(p.n_layer):
            b = f"blk.{i}."
            qkv = [self._array(gguf, f"{b}attn_{x}.weight", (d, d)) for x in "qkv"]
            qkv_bias = [self._array(gguf, f"{b}attn_{x}.bias", (d,)) for x in "qkv"]
            self.layers.append(BertLayer(
                qkv=self._place(np.concatenate(qkv)),
                qkv_bias=self._place(np.concatenate(qkv_bias)),
                attn_out=self._place(self._array(gguf, f"{b}attn_output.weight", (d, d))),
                attn_out_bias=self._place(self._array(gguf, f"{b}attn_output.bias", (d,))),
                attn_norm=self._norm(gguf, f"{b}attn_output_norm", d),
                up=self._place(self._array(gguf, f"{b}ffn_up.weight", (ff, d))),
                up_bias=self._place(self._array(gguf, f"{b}ffn_up.bias", (ff,))),
                down=self._place(self._array(gguf, f"{b}ffn_down.weight", (d, ff))),
                down_bias=self._place(self._array(gguf, f"{b}ffn_down.bias", (d,))),
                out_norm=self._norm(gguf, f"{b}layer_output_norm", d),
            ))

    @staticmethod
    def _array(gguf, name: str, shape) -> np.ndarray:
        names = {t if isinstance(t, str) else t.name for t in gguf.tensors}
        if name not in names:
            raise InvalidModelFile(f"model file lacks tensor {name}")
        data = np.asarray(gguf.tensor(name), dtype=np.float32)
        if shape is not None:
            if data.size != math.prod(shape):
                raise InvalidModelFile(f"tensor {name} has shape {data.shape}, expected {shape}")
            data = data.reshape(shape)
        return data

    def _place(self, array: np.ndarray):
        placed = self.xp.ascontiguousarray(self.xp.asarray(array), dtype=self.xp.float32)
        self.nbytes += placed.nbytes
        return placed

    def _norm(self, gguf, name: str, d: int) -> tuple:
        return self._place(self._array(gguf, f"{name}.weight", (d,))), self._place(self._array(gguf, f"{name}.bias", (d,)))


class BertEncoder:
    """The forward pass over padded groups of inputs."""

    def __init__(self, p: BertParams, w: BertWeights, xp):
        self.p, self.w, self.xp = p, w, xp

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
        h += layer.up_bias
        for start in range(0, h.shape[0], GELU_ROWS):
            self.gelu(h[start : start + GELU_ROWS])
        out = xp.dot(h, layer.down.T)
        out += layer.down_bias
        return out

    def run(self, ids: np.ndarray, lengths: np.ndarray):
        """Final hidden states (batch, length, d) for padded ``ids`` (batch, length)."""
        xp, p, w = self.xp, self.p, self.w
        batch, length = ids.shape
        d, heads, hd = p.n_embd, p.n_head, p.head_dim
        x = xp.take(w.token_embd, xp.asarray(ids.reshape(-1)), axis=0)
        x = x.reshape(batch, length, d)
        x += w.position_embd[:length]
        x += w.embd_bias
        x = self.layer_norm(x.reshape(batch * length, d), w.embd_norm)
        # Keys past each input's end are masked out of every row's softmax.
        mask = np.where(np.arange(length)[None, :] < lengths[:, None], 0.0, -np.inf).astype(np.float32)
        keep = xp.asarray(np.isfinite(mask).astype(np.float32))[:, None, None, :]
        mask = xp.asarray(mask)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for layer in w.layers:
            qkv = xp.dot(x, layer.qkv.T)
            qkv += layer.qkv_bias
            qkv = qkv.reshape(batch, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)  # (3, b, h, l, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
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
            out += layer.attn_out_bias
            out += x
            x = self.layer_norm(out, layer.attn_norm)
            out = self.feed_forward(x, layer)
            out += x
            x = self.layer_norm(out, layer.out_norm)
        return x.reshape(batch, length, d)


class BertRunner:
    """A loaded BERT model: ``embed`` only (it has no language-model head)."""

    architecture = "bert"

    def __init__(self, p: BertParams, weights: BertWeights, backend, tokenizer=None, metadata=None):
        self.p = p
        self.backend = backend
        self.tokenizer = tokenizer
        self.metadata = metadata or {}
        self.encoder = BertEncoder(p, weights, backend.xp)
        self.context_length = p.n_ctx_train
        self.vocab_size = weights.vocab_size
        self.memory_bytes = weights.nbytes
        self._lock = threading.Lock()  # BLAS already uses every core; one batch at a time
        self._closed = False

    def forward(self, batch, should_stop=None):
        raise BadRequest("this model only produces embeddings")

    def new_cache(self, num_ctx: int):
        raise BadRequest("this model only produces embeddings")

    def embed(self, batch: list[list[int]]) -> list[np.ndarray]:
        """One pooled vector (float32) per input, normalised when the model asks for it."""
        if self._closed:
            raise RuntimeError("runner is closed")
        for tokens in batch:
            if not tokens:
                raise BadRequest("cannot embed an empty input")
            if len(tokens) > self.context_length:
                raise BadRequest(f"input of {len(tokens)} tokens exceeds the context of {self.context_length}")
            if min(tokens) < 0 or max(tokens) >= self.vocab_size:
                raise BadRequest(f"token id outside the vocabulary of {self.vocab_size}")
        results: list = [None] * len(batch)
        with self._lock:
            for group in _groups(batch):
                pooled = self._embed_group([batch[i] for i in group])
                for index, vector in zip(group, pooled):
                    results[index] = vector
        return results

    def _embed_group(self, inputs: list[list[int]]) -> list[np.ndarray]:
        length = max(len(t) for t in inputs)
        ids = np.zeros((len(inputs), length), dtype=np.int64)
        for row, tokens in enumerate(inputs):
            ids[row, : len(tokens)] = tokens
        lengths = np.array([len(t) for t in inputs])
        hidden = self.backend.to_numpy(self.encoder.run(ids, lengths))
        out = []
        for row, n in enumerate(lengths):
            if self.p.pooling == "mean":
                vector = hidden[row, :n].mean(axis=0, dtype=np.float64)
            elif self.p.pooling == "cls":
                vector = hidden[row, 0].astype(np.float64)
            else:
                vector = hidden[row, n - 1].astype(np.float64)
            if self.p.normalize:
                norm = np.linalg.norm(vector)
                vector = vector / norm if norm > 0 else vector
            out.append(vector.astype(np.float32))
        return out

    def close(self) -> None:
        self._closed = True
        self.encoder = None


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


def build_bert_runner(gguf, backend, tokenizer=None) -> BertRunner:
    p = read_params(gguf.metadata)
    weights = BertWeights(gguf, p, backend.xp)
    return BertRunner(p, weights, backend, tokenizer, dict(gguf.metadata))
