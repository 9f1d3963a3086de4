"""ggml's CPU kernels (x86, AVX2/AVX512 build), reproduced bit for bit on numpy float32 arrays.

llama.cpp's answer depends on the order in which each kernel adds, not only on what it adds: a
quantized dot product keeps 8 float lanes, each the exact integer dot of 4 consecutive products
of a 32-block, and accumulates ``lane = fma(d_w * d_x, lane, ...)`` across blocks before a fixed
horizontal sum; float16 products keep 16 (or 4 x 16) lanes; softmax and SiLU call ggml's own
polynomial ``expf``. Each function here follows one kernel's order exactly, so that the result
is the same float32 value, not merely a close one. The kernels and their provenance (which ggml
function on which path) are listed in docs/performance.md, "Agreement with llama.cpp".

Float32 fused multiply-add is emulated in float64: the product is exact there, and the sum is
rounded to odd before it is rounded to float32 wherever rounding twice could differ from rounding
once (53 >= 2 * 24 + 2 bits). The k-quant products are in ``ggml_kquants.py``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

F32 = np.float32
F64 = np.float64


# -- exact float32 arithmetic ------------------------------------------------------------------


def fma(a, b, c):
    """float32 ``a * b + c`` rounded once, like the FMA instruction (arrays broadcast).

    The product is exact in float64 and the float64 sum is rounded once more to float32. That
    second rounding can only go wrong where the float64 sum lands exactly on a float32 midpoint
    (a nearer float64 would otherwise exist between the exact sum and it), so only those few
    elements, and any outside float32's normal range, take the exact round-to-odd path."""
    total = np.multiply(a, b, dtype=F64)  # exact: 24 + 24 bits
    if np.size(total) < FMA_SCREEN_FROM:
        return _fma_round_to_odd(a, b, c)
    if total.shape == np.broadcast_shapes(total.shape, np.shape(c)):
        total += c
    else:
        total = total + c
    total = np.asarray(total)
    result = total.astype(F32)
    magnitude = np.abs(result)
    # below float32's normal range (rare; exact zeros excepted) midpoints lie elsewhere
    suspect = (magnitude < _F32_TINY) & (total != 0) if magnitude.min() < _F32_TINY else None
    # a float32 midpoint: the 29 float64 mantissa bits below float32's are exactly 1000...0
    bits = total.reshape(-1).view(np.int64)
    np.bitwise_and(bits, _BELOW_F32, out=bits)  # total is not needed any more
    midpoint = (bits == _F32_MIDPOINT).reshape(result.shape)
    suspect = midpoint if suspect is None else suspect | midpoint
    if suspect.any():
        where = np.nonzero(suspect.reshape(-1))[0]
        shape = result.shape
        pick = [np.broadcast_to(v, shape).reshape(-1)[where] for v in (a, b, c)]
        result = result.reshape(-1)
        result[where] = _fma_round_to_odd(*pick)
        result = result.reshape(shape)
    return result


# Below this many elements the screening costs more than it saves: integer lanes times float32
# scales often sum exactly to a float32 midpoint (harmless, but screened out), so most small
# products would take the exact path anyway.
FMA_SCREEN_FROM = 1 << 13
_BELOW_F32 = np.int64((1 << 29) - 1)
_F32_MIDPOINT = np.int64(1 << 28)
_F32_TINY = F32(2.0**-125)  # twice the smallest normal float32: covers sums that round up to it


def _fma_round_to_odd(a, b, c):
    """``fma`` for any inputs: the float64 sum rounded to odd, which makes the float32 rounding
    exact (53 >= 2 * 24 + 2 bits)."""
    with np.errstate(invalid="ignore", over="ignore"):
        product = np.multiply(a, b, dtype=F64)
        total = np.asarray(product + c)
        # Knuth's two-sum: the exact error of that addition
        back = total - product
        error = (product - (total - back)) + (c - back)
        # round to odd: an inexact sum with an even last bit moves one ulp towards the error
        # (towards an infinity: the error is below half an ulp, ``total + error`` is ``total``)
        fix = (total.view(np.int64) & 1) == 0
        fix &= error != 0
        fix &= np.isfinite(total)
        if fix.any():
            total[fix] = np.nextafter(total[fix], np.copysign(np.inf, error[fix]))
        return total.astype(F32)


def hsum8(lanes):
    """``hsum_float_8`` of x86 quants.c: lanes on axis 0 (8 of them), (l0+l4 + l2+l6) + (l1+l5 + l3+l7)."""
    quad = lanes[:4] + lanes[4:]
    pair = quad[:2] + quad[2:]
    return pair[0] + pair[1]


def reduce16(lanes):
    """GCC's ``_mm512_reduce_add_ps``: lanes on the last axis (16), halved 8, 4, then 2 and 1."""
    eight = lanes[..., 8:] + lanes[..., :8]
    four = eight[..., 4:] + eight[..., :4]
    two = four[..., :2] + four[..., 2:]
    return two[..., 0] + two[..., 1]


# -- activations quantized for a product (quantize_row_q8_0 / q8_1, AVX2 path) -------------------


def quantize_q8(x):
    """Q8_0/Q8_1 of rows x (rows, width): integers (rows, blocks, 32) as float32, the float16
    scale d and Q8_1's float16 ``s = d * sum(q)`` (rows, blocks) as float32."""
    rows, width = x.shape
    blocks = np.ascontiguousarray(x, dtype=F32).reshape(rows, width // 32, 32)
    amax = np.abs(blocks).max(axis=-1)
    d = amax / F32(127)
    with np.errstate(divide="ignore"):
        inverse = np.where(amax != 0, F32(127) / amax, F32(0)).astype(F32)
    q = np.rint(blocks * inverse[..., None])
    s = (
        (d * q.sum(axis=-1, dtype=F32)).astype(np.float16).astype(F32)
    )  # |sum| < 2^13: exact
    return q, d.astype(np.float16).astype(F32), s


# -- quantized matrix products -------------------------------------------------------------------


class QuantizedMatrix:
    """A weight matrix (out, in) as ggml holds it: integers per 32-block with their scales.

    ``q`` is kept as int8 (in / 4, 4, out) so that the 8 lane sums of every block are one batched
    product with K = 4 (exact in float32); ``d`` and ``m`` are (in / 32, out) float32; ``m`` is the
    Q4_1/Q5_1 block minimum, None otherwise. ``activation`` is the vec-dot partner: q8_0 or q8_1.
    """

    def __init__(self, q, d, m, activation: str):
        out, width = q.shape
        self.shape = (width, out)
        self.q = np.ascontiguousarray(
            q.reshape(out, width // 4, 4).transpose(1, 2, 0), dtype=np.int8
        )
        self.d = np.ascontiguousarray(d.T, dtype=F32)
        self.m = None if m is None else np.ascontiguousarray(m.T, dtype=F32)
        self.activation = activation

    def rows(self, order):
        """The same matrix with its output rows taken in ``order``."""
        copy = object.__new__(QuantizedMatrix)
        copy.shape, copy.activation = self.shape, self.activation
        copy.q = np.ascontiguousarray(self.q[:, :, order])
        copy.d = np.ascontiguousarray(self.d[:, order])
        copy.m = None if self.m is None else np.ascontiguousarray(self.m[:, order])
        return copy

    @staticmethod
    def stack(parts):
        first = parts[0]
        joined = object.__new__(QuantizedMatrix)
        joined.activation = first.activation
        joined.q = np.concatenate([p.q for p in parts], axis=2)
        joined.d = np.concatenate([p.d for p in parts], axis=1)
        joined.m = (
            None if first.m is None else np.concatenate([p.m for p in parts], axis=1)
        )
        joined.shape = (first.shape[0], joined.q.shape[2])
        return joined


PRODUCT_CHUNK = 1 << 22  # lane values per slice of outputs: keeps each pass's arrays in cache


def quantized_matmul(x, matrix: QuantizedMatrix, out=None):
    """``ggml_vec_dot_{q4_0,q4_1,q5_0,q5_1,q8_0}_q8_{0,1}`` (AVX2 + VNNI) for every row of x and
    every output: 8 lanes of 4 exact products per block, fma across blocks, ``hsum8``, then the
    sequentially accumulated ``m * s`` of the minimum-carrying types. Outputs are taken a slice
    at a time (each output's value depends on its own column only)."""
    rows, width = x.shape
    blocks = width // 32
    q, d, s = quantize_q8(x)
    groups = q.reshape(rows, width // 4, 4).transpose(1, 0, 2)  # (in/4, rows, 4)
    outputs = matrix.q.shape[2]
    result = np.empty((rows, outputs), F32) if out is None else out
    step = max(64, PRODUCT_CHUNK // (width // 4 * rows))
    for low in range(0, outputs, step):
        high = min(low + step, outputs)
        weights = matrix.q[:, :, low:high].astype(F32)
        lanes = np.matmul(groups, weights).reshape(blocks, 8, rows, high - low)  # exact integers
        acc = np.zeros(lanes.shape[1:], F32)
        for block in range(blocks):
            scale = d[:, block, None] * matrix.d[block, low:high]  # (rows, out): float32 product
            acc = fma(scale, lanes[block], acc)
        part = hsum8(acc)
        if matrix.m is not None:
            # summs += m * s, contracted to an fma by the compiler
            summs = np.zeros_like(part)
            for block in range(blocks):
                summs = fma(matrix.m[block, low:high], s[:, block, None], summs)
            part = part + summs
        result[:, low:high] = part
    return result


# -- float16 products (attention) -------------------------------------------------------------------


def dot_f16_rows(a, b):
    """``ggml_vec_dot_f16`` (AVX512) of a (..., n) and b (..., n), float16-valued float32: over
    the first multiple of 64, four accumulators of 16 lanes, (s0+s2)+(s1+s3), ``reduce16``; the
    leftover products added one by one in double; the result rounded to float32."""
    n = a.shape[-1]
    simd = n - n % 64
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    acc = np.zeros((4,) + shape + (16,), F32)
    for start in range(0, simd, 64):
        for j in range(4):
            chunk = slice(start + 16 * j, start + 16 * j + 16)
            acc[j] = fma(a[..., chunk], b[..., chunk], acc[j])
    total = reduce16((acc[0] + acc[2]) + (acc[1] + acc[3])).astype(F64)
    for i in range(simd, n):
        total = total + (a[..., i] * b[..., i]).astype(F64)
    return total.astype(F32)


def tiled_applies(k: int, m: int) -> bool:
    """Whether llamafile's float16 tinyBLAS takes a product (else ggml falls back to vec_dot)."""
    return k % 16 == 0 and m % 4 == 0


def dot_f16_tiled(a, b):
    """llamafile's tinyBLAS (AVX512, float16 inputs): one 16-lane accumulator per output, fma
    over k in steps of 16, then ``reduce16``; for a (..., k) and b (..., k) broadcast."""
    k = a.shape[-1]
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    acc = np.zeros(shape + (16,), F32)
    for start in range(0, k, 16):
        acc = fma(a[..., start : start + 16], b[..., start : start + 16], acc)
    return reduce16(acc)


# -- elementwise -----------------------------------------------------------------------------------

# ggml_v_expf's constants, as written there in hexadecimal
_EXP = {
    name: F32(float.fromhex(value))
    for name, value in (
        ("shift", "0x1.8p23"),
        ("log2e", "0x1.715476p+0"),
        ("ln2_hi", "0x1.62e4p-1"),
        ("ln2_lo", "0x1.7f7d1cp-20"),
        ("c5", "0x1.0e4020p-7"),
        ("c4", "0x1.573e2ep-5"),
        ("c3", "0x1.555e66p-3"),
        ("c2", "0x1.fffdb6p-2"),
        ("c1", "0x1.ffffecp-1"),
    )
}


def expf(x):
    """``ggml_v_expf`` (AVX512): exp by a degree-5 polynomial and a power-of-two scale."""
    c = _EXP
    x = np.asarray(x, dtype=F32)
    z = fma(x, c["log2e"], c["shift"])
    n = z - c["shift"]
    with np.errstate(invalid="ignore", over="ignore"):
        b = fma(-n, c["ln2_lo"], fma(-n, c["ln2_hi"], x))
        u = b * b
        j = fma(
            fma(fma(c["c5"], b, c["c4"]), u, fma(c["c3"], b, c["c2"])),
            u,
            fma(c["c1"], b, F32(1)),
        )
        big = np.abs(n) > F32(192)
        safe_n = np.where(big | ~np.isfinite(n), F32(0), n)
        result = np.ldexp(j, safe_n.astype(np.int32)).astype(F32)
    if np.any(big):
        result = np.where(big, np.where(n <= 0, F32(0), F32(np.inf)), result).astype(
            F32
        )
    return result


def silu(x):
    """``ggml_v_silu``: x / (1 + expf(0 - x))."""
    x = np.asarray(x, dtype=F32)
    return x / (F32(1) + expf(F32(0) - x))


def rms_norm(x, weight, eps: float, out=None):
    """``ggml_compute_forward_rms_norm_f32`` then the weight: squares summed in order in double,
    ``scale = 1 / sqrtf((float)(sum / n) + eps)``, ``y = x * scale * w``."""
    n = x.shape[-1]
    squares = np.square(x, dtype=F32).astype(F64)
    total = np.cumsum(squares, axis=-1)[..., -1]  # sequential, as the C loop
    mean = (total / n).astype(F32)
    scale = F32(1) / np.sqrt(mean + F32(eps))
    out = np.multiply(x, scale[..., None], out=out)
    out *= weight
    return out


def softmax_rows(scores, mask=None, scale: float = 1.0):
    """``ggml_compute_forward_soft_max_f32`` on rows whose length is a multiple of 16: scale,
    add the mask, subtract the max, ``expf``, sum per 16 (``reduce16``) in double, multiply by
    the float of the double reciprocal."""
    work = scores * F32(scale) if scale != 1.0 else scores.astype(F32, copy=True)
    if mask is not None:
        work = work + mask
    top = work.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        values = expf(work - top)
    chunks = reduce16(values.reshape(values.shape[:-1] + (-1, 16))).astype(F64)
    total = np.cumsum(chunks, axis=-1)[..., -1]
    return values * (1.0 / total).astype(F32)[..., None]


# -- rope ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _libm():
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name in ("cosf", "sinf", "powf"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float] * (2 if name == "powf" else 1)
    return lib


def rope_thetas(position: int, base: float, n_dims: int, factors=None):
    """``ggml_rope_cache_init``'s angles for one position: ``theta *= powf(base, -2/n)`` from
    theta = position, in float32, each divided by its frequency factor when there are some."""
    scale = F32(_libm().powf(F32(base), F32(-2.0) / F32(n_dims)))
    thetas = np.empty(n_dims // 2, F32)
    theta = F32(position)
    for i in range(n_dims // 2):
        thetas[i] = theta
        theta = F32(theta * scale)
    if factors is not None:
        thetas = (thetas / np.asarray(factors, F32)).astype(F32)
    return thetas


@lru_cache(maxsize=1 << 16)
def rope_row(position: int, base: float, n_dims: int, freq_scale: float = 1.0):
    """cos and sin (n_dims / 2,) of one position, through the C library's cosf and sinf."""
    thetas = rope_thetas(position, base, n_dims)
    if freq_scale != 1.0:
        thetas = (thetas * F32(freq_scale)).astype(F32)
    libm = _libm()
    cos = np.array([libm.cosf(float(t)) for t in thetas], F32)
    sin = np.array([libm.sinf(float(t)) for t in thetas], F32)
    return cos, sin


def rope_rotate(x, cos, sin):
    """``rotate_pairs``: (x0 cos - x1 sin, x0 sin + x1 cos), each one fma after one product,
    on x (rows, heads, dim) with halves paired and cos/sin (rows, 1, dim / 2); in place."""
    half = cos.shape[-1]
    x0 = x[..., :half].copy()
    x1 = x[..., half : 2 * half].copy()
    x[..., :half] = fma(x0, cos, -(x1 * sin))
    x[..., half : 2 * half] = fma(x0, sin, x1 * cos)
    return x


# -- GELU (tanh form) through ggml's float16 table ---------------------------------------------------


@lru_cache(maxsize=1)
def gelu_table():
    """``ggml_table_gelu_f16``: ``ggml_gelu_f32`` at every float16, rounded to float16. The C
    source contracts ``1 + A*x*x`` to an fma and calls the C library's tanhf."""
    libm = _libm()
    libm.tanhf.restype = ctypes.c_float
    libm.tanhf.argtypes = [ctypes.c_float]
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(F32)
    with np.errstate(all="ignore"):
        inner = fma(F32(0.044715) * x, x, F32(1))
        arg = F32(0.79788456080286535587989211986876) * x * inner
        tanh = np.array([libm.tanhf(float(v)) for v in arg], F32)
        values = F32(0.5) * x * (F32(1) + tanh)
    return values.astype(np.float16).astype(F32)


def geglu(x, g):
    """``ggml_vec_geglu_f32``: the table at float16(x) times g; 0 at or below -10, x g from 10."""
    x = np.asarray(x, dtype=F32)
    looked_up = gelu_table()[x.astype(np.float16).view(np.uint16)] * g
    return np.where(
        x <= F32(-10), F32(0), np.where(x >= F32(10), x * g, looked_up)
    ).astype(F32)
