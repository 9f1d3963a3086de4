"""Turn a float tensor into ggml blocks of one type, a slice at a time.

A tensor is read from its source (F32, F16 or BF16 bytes, usually memory-mapped) in slices of
whole blocks, each slice is widened to float32 and encoded, and the pieces are joined. Slices keep
the encoders' temporaries small enough to stay in cache, bound memory for huge tensors, and let a
thread pool work on several at once (numpy releases the GIL inside its loops).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from ollamakit.lib.gguf.writer import float32_to_bf16

from . import kquants, legacy


class NonFiniteValues(ValueError):
    """The tensor holds NaN or infinity, which no block type can represent."""


@dataclass(frozen=True)
class BlockType:
    name: str
    block: int  # values per block
    encoder: Callable[[np.ndarray], np.ndarray]
    slice_blocks: int  # blocks per slice: measured fastest for each encoder's working set


BLOCK_TYPES = {
    t.name: t
    for t in (
        BlockType("Q4_0", 32, legacy.q4_0, 8192),
        BlockType("Q4_1", 32, legacy.q4_1, 8192),
        BlockType("Q5_0", 32, legacy.q5_0, 8192),
        BlockType("Q5_1", 32, legacy.q5_1, 8192),
        BlockType("Q8_0", 32, legacy.q8_0, 8192),
        BlockType("Q2_K", 256, kquants.q2_K, 256),
        BlockType("Q3_K", 256, kquants.q3_K, 4096),  # its per-value refinement loop wants width
        BlockType("Q4_K", 256, kquants.q4_K, 256),
        BlockType("Q5_K", 256, kquants.q5_K, 256),
        BlockType("Q6_K", 256, kquants.q6_K, 256),
    )
}
FLOAT_TYPES = ("F32", "F16", "BF16")


def read_floats(raw: np.ndarray, source_type: str, start: int, stop: int) -> np.ndarray:
    """Values ``start:stop`` of a tensor's raw bytes as float32."""
    if source_type == "F32":
        return raw.view("<f4")[start:stop].astype(np.float32)
    if source_type == "F16":
        return raw.view("<f2")[start:stop].astype(np.float32)
    if source_type == "BF16":
        return (raw.view("<u2")[start:stop].astype(np.uint32) << 16).view(np.float32)
    raise ValueError(f"cannot read {source_type} values as floats")


def encode(
    raw: np.ndarray, source_type: str, target: str, executor: Executor | None = None
) -> np.ndarray:
    """Encode a whole float tensor (raw bytes of ``source_type``) as ``target``; returns bytes as
    a uint8 array. ``target`` may also be a float type (a plain conversion)."""
    if target in FLOAT_TYPES:
        return _convert(read_floats(raw, source_type, 0, None), target)
    kind = BLOCK_TYPES[target]
    n_values = raw.size * 8 // _bits(source_type)
    step = kind.block * kind.slice_blocks

    def encode_slice(start: int) -> np.ndarray:
        values = read_floats(raw, source_type, start, min(start + step, n_values))
        if not np.isfinite(values).all():
            raise NonFiniteValues("NaN or infinite values")
        return kind.encoder(values.reshape(-1, kind.block)).reshape(-1)

    starts = range(0, n_values, step)
    pieces = list(
        executor.map(encode_slice, starts)
        if executor is not None and len(starts) > 1
        else map(encode_slice, starts)
    )
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)


def _bits(source_type: str) -> int:
    return 32 if source_type == "F32" else 16


def _convert(values: np.ndarray, target: str) -> np.ndarray:
    if target == "F32":
        return values.view(np.uint8)
    if target == "F16":
        return values.astype("<f2").view(np.uint8)
    return float32_to_bf16(values).view(np.uint8)
