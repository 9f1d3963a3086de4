"""Encoders for ggml's K-quants (256-value super-blocks): Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.

Each takes ``(n_blocks, 256)`` float32 and returns ``(n_blocks, bytes_per_block)`` uint8,
bit-identical to ggml's ``quantize_row_*_ref``. A super-block is split into sub-blocks of 16 or
32 values; each gets a scale (and a minimum) from the searches in ``search.py``, those are
quantized in turn against one float16 super-scale, and finally every value is re-rounded against
the scale it will actually be decoded with.
"""

from __future__ import annotations

import numpy as np

from .floats import (
    F32,
    first_abs_max,
    nearest_int,
    ordered_sum,
    rounded,
    through_f16,
    to_f16,
    wrap_int8,
)
from .search import GROUP_MAX_EPS, refined_signed_scale, scale_and_min, signed_scale

QK_K = 256


def _split(x: np.ndarray, size: int) -> np.ndarray:
    """``(blocks, 256)`` -> ``(size, blocks * 256 / size)``: one column per sub-block."""
    return np.ascontiguousarray(x.reshape(-1, size).T)


def _join(levels: np.ndarray, n_blocks: int) -> np.ndarray:
    """Inverse of ``_split`` for the levels: back to ``(blocks, 256)``."""
    return np.ascontiguousarray(levels.T).reshape(n_blocks, QK_K)


def _half(values: np.ndarray) -> np.ndarray:
    return to_f16(values).reshape(-1, 1).view(np.uint8)


def _requantize(x, levels, step, offset, low, high):
    """Round each value against its decoded sub-block step: ``nearest_int((x + offset) / step)``
    clamped to [low, high]; sub-blocks whose step is zero keep the levels they had. ``step`` and
    ``offset`` are ``(blocks, sub_blocks)``; ``x`` and ``levels`` are ``(blocks, 256)``."""
    n_blocks, n_sub = step.shape
    size = QK_K // n_sub
    x3 = x.reshape(n_blocks, n_sub, size)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = x3 if offset is None else x3 + offset[:, :, None]
        fresh = rounded(shifted / step[:, :, None], low, high) - F32(low)
    keep = (step == 0)[:, :, None]
    return (
        np.where(keep, levels.reshape(n_blocks, n_sub, size), fresh)
        .reshape(n_blocks, QK_K)
        .astype(np.uint8)
    )


def _two_bit_planes(levels: np.ndarray) -> np.ndarray:
    """Q2_K/Q3_K layout: per 128 values, byte l holds values l, l+32, l+64, l+96 (2 bits each)."""
    q = levels.reshape(-1, 2, 4, 32) & 3
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def _pack_scales_k4(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and eight 6-bit minimums into 12 bytes (ggml's get_scale_min_k4 order)."""
    out = np.zeros((ls.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = ls[:, :4] | ((ls[:, 4:] >> 4) << 6)
    out[:, 4:8] = lm[:, :4] | ((lm[:, 4:] >> 4) << 6)
    out[:, 8:12] = (ls[:, 4:] & 0xF) | ((lm[:, 4:] & 0xF) << 4)
    return out


def q2_K(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    sub = _split(x, 16)
    scales, mins, levels = scale_and_min(sub, np.abs(sub), 3, -0.5, 0.1, 15, use_mad=True)
    scales, mins = scales.reshape(n, 16), mins.reshape(n, 16)
    max_scale = np.maximum(scales.max(axis=1), F32(0))
    max_min = np.maximum(mins.max(axis=1), F32(0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        packed_scales = np.where(
            max_scale[:, None] > 0, nearest_int(F32(15) / max_scale[:, None] * scales), 0
        )
        packed_mins = np.where(
            max_min[:, None] > 0, nearest_int(F32(15) / max_min[:, None] * mins), 0
        )
    packed = ((packed_scales & 0xFF) | (packed_mins << 4)).astype(np.uint8)  # uint8 |= l << 4
    d = np.where(max_scale > 0, max_scale / F32(15), F32(0)).astype(F32)
    dmin = np.where(max_min > 0, max_min / F32(15), F32(0)).astype(F32)
    step = through_f16(d)[:, None] * (packed & 0xF).astype(F32)
    offset = through_f16(dmin)[:, None] * (packed >> 4).astype(F32)
    levels = _requantize(x, _join(levels, n), step, offset, 0, 3)
    return np.concatenate([packed, _two_bit_planes(levels), _half(d), _half(dmin)], axis=1)


def q3_K(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    scales, levels = refined_signed_scale(_split(x, 16), 4)
    scales = scales.reshape(n, 16)
    _, max_scale = first_abs_max(scales, axis=1)
    nonzero = max_scale != 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(-32) / max_scale
        six_bit = (
            np.clip(wrap_int8(nearest_int(iscale[:, None] * scales)), -32, 31).astype(np.int32) + 32
        )
        d = np.where(nonzero, F32(1) / iscale, F32(0)).astype(F32)
    six_bit = np.where(nonzero[:, None], six_bit, 0).astype(np.uint8)
    packed = np.zeros((n, 12), dtype=np.uint8)
    packed[:, :8] = (six_bit[:, :8] & 0xF) | ((six_bit[:, 8:] & 0xF) << 4)
    high = (six_bit >> 4).reshape(n, 4, 4)  # [j // 4, j % 4]
    packed[:, 8:] = high[:, 0] | (high[:, 1] << 2) | (high[:, 2] << 4) | (high[:, 3] << 6)
    step = through_f16(d)[:, None] * (six_bit.astype(np.int32) - 32).astype(F32)
    levels = _requantize(x, _join(levels, n), step, None, -4, 3)
    # The third bit of value j goes to bit (j // 32) of hmask byte (j % 32).
    upper = (levels > 3).reshape(n, 8, 32).astype(np.uint8)
    hmask = np.bitwise_or.reduce(upper << np.arange(8, dtype=np.uint8)[None, :, None], axis=1)
    return np.concatenate([hmask, _two_bit_planes(levels & 3), packed, _half(d)], axis=1)


def _q45_K(x: np.ndarray, nmax: int, rmin: float, nstep: int):
    """What Q4_K and Q5_K share: 8 sub-blocks of 32 with 6-bit scales and minimums."""
    n = x.shape[0]
    sub = _split(x, 32)
    mean_square = ordered_sum(sub * sub) / F32(32)
    weights = np.sqrt(mean_square)[None, :] + np.abs(sub)
    scales, mins, levels = scale_and_min(sub, weights, nmax, rmin, 0.1, nstep, use_mad=False)
    scales, mins = scales.reshape(n, 8), mins.reshape(n, 8)
    max_scale = np.maximum(scales.max(axis=1), F32(0))
    max_min = np.maximum(mins.max(axis=1), F32(0))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0)).astype(F32)
        inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0)).astype(F32)
    ls = np.minimum(63, nearest_int(inv_scale[:, None] * scales) & 0xFF).astype(np.uint8)
    lm = np.minimum(63, nearest_int(inv_min[:, None] * mins) & 0xFF).astype(np.uint8)
    d = (max_scale / F32(63)).astype(F32)
    dmin = (max_min / F32(63)).astype(F32)
    step = through_f16(d)[:, None] * ls.astype(F32)
    offset = through_f16(dmin)[:, None] * lm.astype(F32)
    levels = _requantize(x, _join(levels, n), step, offset, 0, nmax)
    return np.concatenate([_half(d), _half(dmin), _pack_scales_k4(ls, lm)], axis=1), levels


def q4_K(x: np.ndarray) -> np.ndarray:
    head, levels = _q45_K(x, 15, -1.0, 20)
    q = levels.reshape(-1, 4, 2, 32)
    return np.concatenate([head, (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, 128)], axis=1)


def q5_K(x: np.ndarray) -> np.ndarray:
    head, levels = _q45_K(x, 31, -0.5, 15)
    q = levels.reshape(-1, 4, 2, 32)  # [64-value group, low/high half, 32]
    low = (q[:, :, 0] & 0xF) | ((q[:, :, 1] & 0xF) << 4)
    fifth = (q >> 4).astype(
        np.uint8
    )  # bit 2g of qh[j] for the first half of group g, 2g+1 for the second
    shifts = (2 * np.arange(4, dtype=np.uint8))[None, :, None]
    qh = np.bitwise_or.reduce((fifth[:, :, 0] << shifts) | (fifth[:, :, 1] << (shifts + 1)), axis=1)
    return np.concatenate([head, qh, low.reshape(-1, 128)], axis=1)


def q6_K(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    scales, levels = signed_scale(_split(x, 16), 32)
    scales = scales.reshape(n, 16)
    max_abs, max_scale = first_abs_max(scales, axis=1)
    zero = max_abs < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(-128) / max_scale
        d = np.where(zero, F32(0), F32(1) / iscale).astype(F32)
        packed_scales = wrap_int8(np.minimum(127, nearest_int(iscale[:, None] * scales)))
    packed_scales = np.where(zero[:, None], 0, packed_scales).astype(np.int8)
    step = through_f16(d)[:, None] * packed_scales.astype(F32)
    levels = _requantize(x, _join(levels, n), step, None, -32, 31)
    levels = np.where(zero[:, None], 0, levels).astype(np.uint8)
    q = levels.reshape(n, 2, 4, 32)  # [128-value half, quarter, 32]
    ql = np.concatenate(
        [
            (q[:, :, 0] & 0xF) | ((q[:, :, 2] & 0xF) << 4),
            (q[:, :, 1] & 0xF) | ((q[:, :, 3] & 0xF) << 4),
        ],
        axis=2,
    )
    top = q >> 4
    qh = top[:, :, 0] | (top[:, :, 1] << 2) | (top[:, :, 2] << 4) | (top[:, :, 3] << 6)
    return np.concatenate(
        [ql.reshape(n, 128), qh.reshape(n, 64), packed_scales.view(np.uint8), _half(d)], axis=1
    )
