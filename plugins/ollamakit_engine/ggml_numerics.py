"""``numerics: "llama.cpp"``: the transformer's kernels replaced by bit-exact copies of ggml's.

``LlamaCppOps`` overrides the kernels of ``Ops`` whose result llama.cpp's CPU backend computes in
another order (``ggml_kernels.py`` has each kernel). Quantized products need the weights as ggml
holds them (integers and block scales), not dequantized floats: ``attach`` reads them from the
GGUF once the weights are loaded and keeps them beside each ``Linear``.

The mode follows llama-cpp-python's defaults (flash attention off, float16 K/V, n_ubatch 512):
a step of several rows multiplies attention through llamafile's tinyBLAS, a single row through
``ggml_vec_dot_f16``, exactly as llama.cpp does for a prompt and a decode step of one sequence.
"""

from __future__ import annotations

import numpy as np

from ollamakit.errors import BadRequest, InvalidModelFile

from . import ggml_kernels as gk
from . import ggml_kquants as kq
from .ops import Ops
from .weights import _per_head, rope_halves_order

F32 = np.float32
KV_PAD = 256  # llama.cpp attends over a multiple of 256 cache cells (zero past the used ones)


# -- weights as ggml holds them -------------------------------------------------------------------

_BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q5_0": 22, "Q5_1": 24, "Q8_0": 34}
_PARTNER = {
    "Q4_0": "q8_0",
    "Q5_0": "q8_0",
    "Q8_0": "q8_0",
    "Q4_1": "q8_1",
    "Q5_1": "q8_1",
}


class Unsupported(Exception):
    """A tensor type whose ggml kernel is not reproduced here (yet)."""


def _f16(raw, offset):
    return raw[:, offset : offset + 2].copy().view(np.float16)[:, 0].astype(F32)


def _nibbles(qs):
    """Q4 layout: byte j holds element j (low nibble) and element j + 16 (high nibble)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh_bytes):
    """The 32 fifth bits of a Q5 block, element j at bit j of the little-endian word."""
    word = qh_bytes.copy().view("<u4")[:, 0]
    return ((word[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int16)


def quantized_matrix(
    raw: np.ndarray, type_name: str, out: int, width: int
) -> gk.QuantizedMatrix:
    """A (out, width) ``QuantizedMatrix`` from a tensor's raw GGUF bytes."""
    size = _BLOCK_BYTES.get(type_name)
    if size is None:
        raise Unsupported(type_name)
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, size)
    if blocks.shape[0] != out * width // 32:
        raise InvalidModelFile(
            f"{type_name} tensor has {blocks.shape[0]} blocks, expected {out * width // 32}"
        )
    d = _f16(blocks, 0)
    m = None
    if type_name == "Q8_0":
        q = blocks[:, 2:].view(np.int8).astype(np.int16)
    elif type_name == "Q4_0":
        q = _nibbles(blocks[:, 2:]).astype(np.int16) - 8
    elif type_name == "Q4_1":
        m = _f16(blocks, 2)
        q = _nibbles(blocks[:, 4:]).astype(np.int16)
    elif type_name == "Q5_0":
        q = (
            _nibbles(blocks[:, 6:]).astype(np.int16) | (_high_bits(blocks[:, 2:6]) << 4)
        ) - 16
    else:  # Q5_1
        m = _f16(blocks, 2)
        q = _nibbles(blocks[:, 8:]).astype(np.int16) | (_high_bits(blocks[:, 4:8]) << 4)
    shape = (out, width // 32)
    return gk.QuantizedMatrix(
        q.reshape(out, width).astype(np.int8),
        d.reshape(shape),
        None if m is None else m.reshape(shape),
        _PARTNER[type_name],
    )


def _raw_matrix(gguf, name: str):
    info = gguf.tensor_info(name)
    width, out = int(info.shape[0]), int(np.prod(info.shape[1:]))
    if info.type_name == "Q4_K" and out % 8 == 0:  # repacked 8 rows at a time (see ggml_kquants)
        return kq.Q4KMatrix(gguf.raw(name), out, width)
    if info.type_name == "Q6_K":
        return kq.Q6KMatrix(gguf.raw(name), out, width)
    if info.type_name not in _BLOCK_BYTES:
        raise Unsupported(info.type_name)
    return quantized_matrix(gguf.raw(name), info.type_name, out, width)


class Concatenated:
    """Projections fused along their outputs (q, k, v) whose types multiply differently."""

    def __init__(self, parts):
        self.parts = parts
        self.shape = (parts[0].shape[0], sum(part.shape[1] for part in parts))


def _stack(parts):
    """One matrix for fused projections: a single ``QuantizedMatrix`` where their vec-dots
    share a form (the activation type and whether blocks carry a minimum)."""
    forms = {(type(p), getattr(p, "activation", None), getattr(p, "m", None) is None) for p in parts}
    if len(forms) == 1 and isinstance(parts[0], gk.QuantizedMatrix):
        return gk.QuantizedMatrix.stack(parts)
    return Concatenated(parts)


TILED_FROM_ROWS = 8  # this build multiplies the k-quants it does not repack by its tiled gemm from here


def product(matrix, x, step_rows: int, row_numbers=None):
    """x (rows, in) times a weight matrix held as ggml holds it, with the kernel ggml picks for
    its type when a product has ``step_rows`` activation rows (see ggml_kquants): a repacked
    Q4_K takes them 4 at a time through its gemm and the rest through its gemv; Q6_K goes tiled
    from ``TILED_FROM_ROWS``. ``row_numbers`` (ascending) are the rows of such a product that x
    holds, when it holds only some of them."""
    if isinstance(matrix, Concatenated):
        return np.concatenate([product(part, x, step_rows, row_numbers) for part in matrix.parts], axis=1)
    if isinstance(matrix, kq.Q4KMatrix):
        gemm_rows = step_rows - step_rows % 4
        if row_numbers is not None:
            gemm_rows = sum(1 for number in row_numbers if number < gemm_rows)
        return matrix.product(x, gemm_rows=gemm_rows)
    if isinstance(matrix, kq.Q6KMatrix):
        return matrix.product(x, tiled=step_rows >= TILED_FROM_ROWS)
    return gk.quantized_matmul(x, matrix)


def _layer_matrices(gguf, hp, prefix: str, order) -> dict:
    """Each projection of one layer, fused and reordered as ``weights._layer`` does."""

    def heads(name, n_heads):
        matrix = _raw_matrix(gguf, prefix + name)
        if order is None:
            return matrix
        rows = _per_head(np.arange(matrix.shape[1]), n_heads, order)
        return matrix.rows(rows)

    built = {
        "qkv": lambda: _stack(
            [
                heads("attn_q.weight", hp.n_head),
                heads("attn_k.weight", hp.n_head_kv),
                _raw_matrix(gguf, prefix + "attn_v.weight"),
            ]
        ),
        "attn_out": lambda: _raw_matrix(gguf, prefix + "attn_output.weight"),
        "gate_up": lambda: _stack(
            [
                _raw_matrix(gguf, prefix + "ffn_gate.weight"),
                _raw_matrix(gguf, prefix + "ffn_up.weight"),
            ]
        ),
        "down": lambda: _raw_matrix(gguf, prefix + "ffn_down.weight"),
    }
    matrices = {}
    for name, build in built.items():
        try:
            matrices[name] = build()
        except Unsupported:
            pass  # this product keeps the approximate rounding of ``Ops.linear``
    return matrices


# -- the kernels ----------------------------------------------------------------------------------


class LlamaCppOps(Ops):
    """``Ops`` whose every kernel gives llama.cpp's float32 bits (numpy only)."""

    def __init__(self, backend):
        super().__init__(backend, exact=True)
        if self.xp is not np:
            raise BadRequest('numerics "llama.cpp" runs on the numpy backend only')
        self._matrices: dict[int, object] = {}
        self._whole_step = None
        self._kept_rows = None
        self._step_rows = 1
        self._file_order = None

    def attach(self, gguf, hp, weights) -> None:
        """Read the quantized matrices of ``weights`` (just loaded from ``gguf``) as ggml holds
        them. Types not reproduced here (float types, the other k- and i-quants) keep
        ``Ops.linear``."""
        order = rope_halves_order(hp) if hp.interleaved_rope else None
        # Our heads keep rope's pairs as halves; ggml's KQ sums the dimensions in file order.
        self._file_order = None if order is None else np.argsort(order)
        if weights.rope_factors is not None:
            raise BadRequest(
                'numerics "llama.cpp" does not support rope frequency factors yet'
            )
        for index, layer in enumerate(weights.layers):
            for name, matrix in _layer_matrices(
                gguf, hp, f"blk.{index}.", order
            ).items():
                self._matrices[id(getattr(layer, name))] = matrix
        # The model carries only the rows it outputs through its last layer from the attention
        # output on, as llama.cpp does, but llama.cpp multiplies that layer's attention output
        # for every row of the step, and ggml picks some kernels by the rows of a product.
        self._whole_step = id(weights.layers[-1].attn_out)
        output = (
            "output.weight"
            if "output.weight"
            in {t if isinstance(t, str) else t.name for t in gguf.tensors}
            else "token_embd.weight"
        )
        try:
            self._matrices[id(weights.output)] = _raw_matrix(gguf, output)
        except Unsupported:
            pass
        self._weights = weights  # keeps every keyed Linear alive

    # -- products

    def linear(self, x, linear, out=None):
        matrix = self._matrices.get(id(linear))
        if matrix is None:  # a type not reproduced bit for bit: rounded as llama.cpp rounds
            return super().linear(x, linear, out=out)
        if id(linear) == self._whole_step and self._kept_rows is not None:
            result = product(matrix, x, self._step_rows, self._kept_rows)
        else:
            result = product(matrix, x, x.shape[0])
        if out is None:
            return result
        out[...] = result
        return out

    def embed(self, table, ids, out):
        # every step starts here: llama.cpp picks its attention kernels by the rows of a step
        self._step_rows = len(ids)
        self._kept_rows = None
        return super().embed(table, ids, out)

    def take_rows(self, x, rows):
        self._kept_rows = list(rows)
        return super().take_rows(x, rows)

    # -- elementwise

    def rms_norm(self, x, weight, eps: float, out=None):
        return gk.rms_norm(x, weight, eps, out=out)

    def gated_activation(self, gate, up, activation: str):
        if activation == "silu":
            gate[...] = gk.silu(gate) * up
        elif activation == "gelu_tanh":
            gate[...] = gk.geglu(gate, up)
        else:
            return super().gated_activation(gate, up, activation)
        return gate

    def rope_tables(self, positions, base: float, hp):
        """cos and sin (rows, 1, rope_dim / 2) as ``ggml_rope_cache_init`` computes them."""
        rows = [
            gk.rope_row(int(p), float(base), hp.rope_dim, float(hp.rope_scale))
            for p in positions
        ]
        cos = np.stack([r[0] for r in rows])[:, None, :]
        sin = np.stack([r[1] for r in rows])[:, None, :]
        return cos, sin

    def rope(self, x, cos, sin):
        return gk.rope_rotate(x, cos, sin)

    # -- attention

    def store_kv(self, cache_rows, new_rows):
        cache_rows[...] = new_rows.transpose(1, 0, 2).astype(np.float16)

    def attention(self, q, keys, values, mask, out, scale: float = 1.0):
        """ggml's attention without flash attention: KQ and KQV as float16 products (tinyBLAS
        for a step of several rows, ``ggml_vec_dot_f16`` for one), softmax in between."""
        rows, n_head, dim = q.shape
        n_kv, cached, dim_v = values.shape
        group = n_head // n_kv
        padded = -(-cached // 64) * 64  # zero cells past the cached ones change no sum
        # llamafile's tinyBLAS multiplies a step of several rows, ggml_vec_dot_f16 a single one
        several = self._step_rows > 1
        dot_kq = (
            gk.dot_f16_tiled
            if several and gk.tiled_applies(dim, KV_PAD)
            else gk.dot_f16_rows
        )
        dot_kqv = (
            gk.dot_f16_tiled
            if several and gk.tiled_applies(KV_PAD, dim_v)
            else gk.dot_f16_rows
        )
        q16 = q.astype(np.float16).astype(F32).transpose(1, 0, 2)  # (n_head, rows, dim)
        k = np.repeat(keys, group, axis=0)  # (n_head, cached, dim)
        if self._file_order is not None:
            q16, k = q16[..., self._file_order], k[..., self._file_order]
        scores = dot_kq(q16[:, :, None, :], k[:, None, :, :])  # (n_head, rows, cached)
        full = np.full((n_head, rows, padded), -np.inf, F32)
        full[..., :cached] = scores
        if mask is not None:
            full[..., :cached] += mask
        probs = gk.softmax_rows(full, None, scale)
        probs = probs.astype(np.float16).astype(F32)
        v = np.zeros((n_kv, dim_v, padded), F32)
        v[:, :, :cached] = values.transpose(0, 2, 1)
        v = np.repeat(v, group, axis=0)  # (n_head, dim_v, padded)
        mixed = dot_kqv(probs[:, :, None, :], v[:, None, :, :])  # (n_head, rows, dim_v)
        out[...] = mixed.transpose(1, 0, 2).reshape(rows, n_head * dim_v)
        return out
