"""Encoders for ggml's 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.

Each takes ``(n_blocks, 32)`` float32 values and returns ``(n_blocks, bytes_per_block)`` uint8,
bit-identical to ggml's ``quantize_row_*_ref`` (no importance matrix): one scale (and for the
``_1`` types a minimum) per block, then one rounding per value.
"""

from __future__ import annotations

import numpy as np

from .floats import F32, c_int8, first_abs_max, first_max, first_min, roundf, to_f16


def _inverse(d: np.ndarray) -> np.ndarray:
    """``d ? 1.0f/d : 0.0f``."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)


def _nibbles(q: np.ndarray) -> np.ndarray:
    """Element j in the low nibble of byte j, element j + 16 in its high nibble."""
    q = q.astype(np.uint8)
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def _fifth_bits(q: np.ndarray) -> np.ndarray:
    """Bit 4 of each of the 32 values, packed into a little-endian uint32 (bit j = element j)."""
    return np.packbits((q.astype(np.uint8) >> 4) & 1, axis=1, bitorder="little")


def _half(values: np.ndarray) -> np.ndarray:
    return to_f16(values).reshape(-1, 1).view(np.uint8)


def _signed_scale(x: np.ndarray, divisor: int):
    """Scale from the value of largest magnitude, signed so that value maps to -divisor."""
    _, signed = first_abs_max(x, axis=1)
    d = (signed / F32(-divisor)).astype(F32)
    return d, _inverse(d)


def _offset_scale(x: np.ndarray, levels: int):
    low, high = first_min(x, axis=1), first_max(x, axis=1)
    d = ((high - low) / F32(levels)).astype(F32)
    return low, d, _inverse(d)


def q4_0(x: np.ndarray) -> np.ndarray:
    d, inverse = _signed_scale(x, 8)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.minimum(15, c_int8(x * inverse[:, None] + F32(8.5)))
    return np.concatenate([_half(d), _nibbles(q)], axis=1)


def q4_1(x: np.ndarray) -> np.ndarray:
    low, d, inverse = _offset_scale(x, 15)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.minimum(15, c_int8((x - low[:, None]) * inverse[:, None] + F32(0.5)))
    return np.concatenate([_half(d), _half(low), _nibbles(q)], axis=1)


def q5_0(x: np.ndarray) -> np.ndarray:
    d, inverse = _signed_scale(x, 16)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.minimum(31, c_int8(x * inverse[:, None] + F32(16.5)))
    return np.concatenate([_half(d), _fifth_bits(q), _nibbles(q)], axis=1)


def q5_1(x: np.ndarray) -> np.ndarray:
    low, d, inverse = _offset_scale(x, 31)
    with np.errstate(invalid="ignore", over="ignore"):
        q = c_int8((x - low[:, None]) * inverse[:, None] + F32(0.5))  # (uint8_t), no clamp in ggml
    return np.concatenate([_half(d), _half(low), _fifth_bits(q), _nibbles(q)], axis=1)


def q8_0(x: np.ndarray) -> np.ndarray:
    d = (np.max(np.abs(x), axis=1) / F32(127)).astype(F32)
    inverse = _inverse(d)
    with np.errstate(invalid="ignore", over="ignore"):
        q = c_int8(roundf(x * inverse[:, None]))
    return np.concatenate([_half(d), q.view(np.uint8)], axis=1)
