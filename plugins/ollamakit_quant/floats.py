"""Float32 arithmetic exactly as ggml's C reference quantizers do it.

Bit-identical blocks need the same roundings in the same order: every intermediate stays float32,
sums accumulate left to right (numpy's own sums are pairwise), and integers come from ggml's
``nearest_int`` trick rather than from ``np.rint``. The search helpers lay data out as
``(elements, blocks)`` so each of these steps runs over all blocks of a tensor at once.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
_MAGIC = F32(12582912.0)  # 1.5 * 2**23: adding it leaves round(x) in the low mantissa bits
_NEAREST_INT_RANGE = F32(4194303)  # where the trick equals round-half-even (ggml asserts it)


def nearest_int(values: np.ndarray) -> np.ndarray:
    """ggml's nearest_int: round half to even through the float32 mantissa (int32 result).

    Out-of-range inputs give the same garbage the C code gives, so even absurd outliers encode
    identically.
    """
    biased = np.asarray(values, dtype=F32) + _MAGIC
    return (biased.view(np.int32) & 0x007FFFFF) - 0x00400000


def rounded(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """``MAX(low, MIN(high, nearest_int(v)))`` as float32, the hot step of every scale search.

    Within nearest_int's range (|v| < 2**22) it equals np.rint, which is one vector instruction;
    if any lane lies outside, the exact integer path reproduces ggml's result instead.
    """
    values = np.asarray(values, dtype=F32)
    if values.size and not (
        values.min() > -_NEAREST_INT_RANGE and values.max() < _NEAREST_INT_RANGE
    ):
        return np.clip(nearest_int(values), low, high).astype(F32)  # also taken for NaN
    out = np.rint(values)
    np.maximum(out, F32(low), out=out)
    np.minimum(out, F32(high), out=out)
    return out


def roundf(values: np.ndarray) -> np.ndarray:
    """C's roundf (half away from zero), exact for every float32: in float64, |x| + 0.5 is exact."""
    wide = np.asarray(values, dtype=np.float64)
    return np.copysign(np.floor(np.abs(wide) + 0.5), wide)


def to_f16(values: np.ndarray) -> np.ndarray:
    """Round to float16 (nearest even, as GGML_FP32_TO_FP16)."""
    return np.asarray(values, dtype=F32).astype(np.float16)


def through_f16(values: np.ndarray) -> np.ndarray:
    """The float32 a value reads back as once stored as float16."""
    return to_f16(values).astype(F32)


def ordered_sum(terms: np.ndarray) -> np.ndarray:
    """Sum ``(n, blocks)`` float32 terms over axis 0 strictly left to right, as a C loop does.

    numpy reduces a C-contiguous array over its outer axis one row at a time, which is that
    order; with a single block the axis would become contiguous and be summed pairwise instead,
    so that case is added row by row.
    """
    terms = np.ascontiguousarray(terms, dtype=F32)
    if terms.ndim == 2 and terms.shape[1] < 2:
        total = terms[0].copy()
        for row in terms[1:]:
            total += row
        return total
    return np.add.reduce(terms, axis=0)


def first_abs_max(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The largest |x| along ``axis`` and the signed value first reaching it, as ggml's
    ``if (ax > amax) { amax = ax; max = x[i]; }`` loops find them (both +0.0 when all are zero)."""
    index = np.expand_dims(np.argmax(np.abs(x), axis=axis), axis)
    signed = np.take_along_axis(x, index, axis=axis).squeeze(axis)
    signed = np.where(signed == 0, F32(0), signed)  # the loop never moves off its +0.0 start
    return np.abs(signed), signed


def first_min(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """The minimum along ``axis`` as ``if (v < min) min = v`` finds it (the first of equal zeros)."""
    index = np.expand_dims(np.argmin(x, axis=axis), axis)
    return np.take_along_axis(x, index, axis=axis).squeeze(axis)


def first_max(x: np.ndarray, axis: int = 0) -> np.ndarray:
    index = np.expand_dims(np.argmax(x, axis=axis), axis)
    return np.take_along_axis(x, index, axis=axis).squeeze(axis)


def c_int8(values: np.ndarray) -> np.ndarray:
    """C's ``(int8_t)`` of a float on x86: truncate toward zero through a 32-bit integer (which
    is INT_MIN when out of range or NaN), then keep the low byte."""
    values = np.asarray(values)
    if values.size and values.min() > -(2.0**31) and values.max() < 2.0**31:  # False for NaN
        return values.astype(np.int32).astype(np.int8)
    wide = values.astype(np.float64)
    ok = np.isfinite(wide) & (np.abs(wide) < 2.0**31)
    as_int = np.where(ok, np.trunc(np.where(ok, wide, 0.0)), -(2.0**31)).astype(np.int64)
    return as_int.astype(np.uint8).view(np.int8)


def wrap_int8(values: np.ndarray) -> np.ndarray:
    """An int stored into an int8_t (two's complement wrap)."""
    return np.asarray(values).astype(np.int64).astype(np.uint8).view(np.int8)
