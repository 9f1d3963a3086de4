"""Weights of a decoder-only transformer, dequantized to float32 once at load.

Matrices are stored transposed, (in, out) and contiguous, so ``x @ W`` runs as one BLAS call
without copies (see ``Ops.matrix``); the token embedding too, (width, vocab), since a tied
output projection reads it as a matrix and a lookup of a few columns costs little either way.
Matrices that read the same input are fused (q/k/v into one, gate/up into one): one large
product beats several small ones, chiefly when decoding a single row.

Llama GGUFs store q/k rows permuted so that rope rotates adjacent pairs; we undo that permutation
here, so every architecture rotates the two halves of each head (contiguous slices, cheaper to
compute) and attention scores stay exactly the same (q and k share the permutation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ollamakit.errors import InvalidModelFile

from .hparams import HParams


@dataclass
class Linear:
    """A projection ``x @ weight.T``."""

    weight: object  # (in, out), contiguous
    # When set, ``weight`` has zero columns past this many (``Ops.padded_width``); products keep
    # only the first ``width`` columns.
    width: int | None = None

    @property
    def shape(self):
        rows, cols = self.weight.shape
        return (rows, cols if self.width is None else self.width)


@dataclass
class LayerWeights:
    attn_norm: object
    qkv: Linear  # n_embd -> q_dim + kv_dim + v_dim
    qkv_bias: object | None
    q_norm: object | None  # per-head RMS norms (gemma3, qwen3)
    k_norm: object | None
    attn_out: Linear  # n_head * head_dim_v -> n_embd
    post_attn_norm: object | None  # gemma3 normalises each block's output as well
    ffn_norm: object
    gate_up: Linear  # n_embd -> 2 * n_ff
    down: Linear  # n_ff -> n_embd
    post_ffn_norm: object | None


@dataclass
class ModelWeights:
    token_embd: object  # (n_embd, vocab): transposed
    output: Linear  # (n_embd, vocab); the embedding itself when tied
    output_norm: object
    rope_factors: object | None  # llama3-style per-frequency divisors (``rope_freqs.weight``)
    layers: list[LayerWeights] = field(default_factory=list)
    nbytes: int = 0

    @property
    def vocab_size(self) -> int:
        return int(self.token_embd.shape[1])


class TensorSource:
    """Reads named tensors from a GGUF file, checking each shape before trusting it."""

    def __init__(self, gguf, ops):
        self.gguf = gguf
        self.ops = ops
        self.names = {t if isinstance(t, str) else t.name for t in gguf.tensors}
        self.nbytes = 0

    def has(self, name: str) -> bool:
        return name in self.names

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.names:
            raise InvalidModelFile(f"model file lacks tensor {name}")
        data = np.asarray(self.gguf.tensor(name), dtype=np.float32)
        if data.size != int(np.prod(shape)):
            raise InvalidModelFile(f"tensor {name} has shape {data.shape}, expected {shape}")
        return data.reshape(shape)

    def optional(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        return self.array(name, shape) if name in self.names else None

    def upload(self, array: np.ndarray | None, matrix: bool = False):
        if array is None:
            return None
        placed = self.ops.matrix(array) if matrix else self.ops.vector(array)
        self.nbytes += placed.nbytes
        return placed

    def linear(self, array: np.ndarray) -> Linear:
        cols, rows = array.shape  # stored transposed: (rows, cols) = (in, out)
        padded = self.ops.padded_width(rows, cols)
        if padded == cols:
            return Linear(self.upload(array, matrix=True))
        array = np.concatenate([array, np.zeros((padded - cols, rows), np.float32)])
        return Linear(self.upload(array, matrix=True), width=cols)


def rope_halves_order(hp: HParams) -> np.ndarray:
    """Within a head, the order that turns adjacent rope pairs into halves."""
    rotated = hp.rope_dim
    order = np.concatenate(
        [np.arange(0, rotated, 2), np.arange(1, rotated, 2), np.arange(rotated, hp.head_dim)]
    )
    return order


def _per_head(rows: np.ndarray | None, n_heads: int, order: np.ndarray | None) -> np.ndarray | None:
    """Reorder the rows (or entries) of each head of a q/k projection."""
    if rows is None or order is None:
        return rows
    head_dim = len(order)
    shaped = rows.reshape(n_heads, head_dim, -1)
    return shaped[:, order].reshape(rows.shape)


def load_weights(gguf, hp: HParams, ops) -> ModelWeights:
    src = TensorSource(gguf, ops)
    d = hp.n_embd
    token_embd = _embedding(src, d)
    vocab = token_embd.shape[0]
    embd = src.upload(token_embd, matrix=True)
    if src.has("output.weight"):
        output = src.linear(src.array("output.weight", (vocab, d)))
    else:
        output = Linear(embd)  # tied embeddings
    order = rope_halves_order(hp) if hp.interleaved_rope else None
    rope_factors = src.optional("rope_freqs.weight", (hp.rope_dim // 2,))
    weights = ModelWeights(
        token_embd=embd,
        output=output,
        output_norm=src.upload(src.array("output_norm.weight", (d,))),
        rope_factors=src.upload(rope_factors),
    )
    for i in range(hp.n_layer):
        weights.layers.append(_layer(src, hp, f"blk.{i}.", order))
    weights.nbytes = src.nbytes
    return weights


def _embedding(src: TensorSource, width: int) -> np.ndarray:
    if not src.has("token_embd.weight"):
        raise InvalidModelFile("model file lacks tensor token_embd.weight")
    data = np.asarray(src.gguf.tensor("token_embd.weight"), dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != width or data.shape[0] < 1:
        raise InvalidModelFile(
            f"tensor token_embd.weight has shape {data.shape}, expected (vocab, {width})"
        )
    return data


def _layer(src: TensorSource, hp: HParams, prefix: str, order: np.ndarray | None) -> LayerWeights:
    d = hp.n_embd
    q = _per_head(src.array(prefix + "attn_q.weight", (hp.q_dim, d)), hp.n_head, order)
    k = _per_head(src.array(prefix + "attn_k.weight", (hp.kv_dim, d)), hp.n_head_kv, order)
    v = src.array(prefix + "attn_v.weight", (hp.v_dim, d))
    qkv_bias = None
    if src.has(prefix + "attn_q.bias"):  # qwen2 style
        qkv_bias = np.concatenate(
            [
                _per_head(src.array(prefix + "attn_q.bias", (hp.q_dim,)), hp.n_head, order),
                _per_head(src.array(prefix + "attn_k.bias", (hp.kv_dim,)), hp.n_head_kv, order),
                src.array(prefix + "attn_v.bias", (hp.v_dim,)),
            ]
        )
    gate = src.array(prefix + "ffn_gate.weight", (hp.n_ff, d))
    up = src.array(prefix + "ffn_up.weight", (hp.n_ff, d))
    head_norm = (hp.head_dim,)
    return LayerWeights(
        attn_norm=src.upload(src.array(prefix + "attn_norm.weight", (d,))),
        qkv=src.linear(np.concatenate([q, k, v])),
        qkv_bias=src.upload(qkv_bias),
        q_norm=src.upload(
            _per_head(src.optional(prefix + "attn_q_norm.weight", head_norm), 1, order)
        ),
        k_norm=src.upload(
            _per_head(src.optional(prefix + "attn_k_norm.weight", head_norm), 1, order)
        ),
        attn_out=src.linear(
            src.array(prefix + "attn_output.weight", (d, hp.n_head * hp.head_dim_v))
        ),
        post_attn_norm=src.upload(src.optional(prefix + "post_attention_norm.weight", (d,))),
        ffn_norm=src.upload(src.array(prefix + "ffn_norm.weight", (d,))),
        gate_up=src.linear(np.concatenate([gate, up])),
        down=src.linear(src.array(prefix + "ffn_down.weight", (d, hp.n_ff))),
        post_ffn_norm=src.upload(src.optional(prefix + "post_ffw_norm.weight", (d,))),
    )
