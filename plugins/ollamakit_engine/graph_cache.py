"""The key/value cache of one sequence for the graph engine, in ggml tensors.

Each layer keeps keys (n_kv * head_dim, num_ctx) and values (n_kv * head_dim_v, num_ctx), one
row per position, in the cache type (float16 by default, Ollama's ``OLLAMA_KV_CACHE_TYPE``:
``q8_0`` and ``q4_0`` quantize rows as they are written, as llama.cpp does). Keys are stored after
rope. The buffer is allocated and zeroed at ``num_ctx`` when the sequence starts, as llama.cpp
allocates its cache, so ``cache_bytes`` is what it holds from then on.

``shift`` is Ollama's context shift done as llama.cpp does it: the kept rows move down in place and
their keys are rotated by the distance they moved; nothing is evaluated again.
"""

from __future__ import annotations

import itertools

import numpy as np

from ollamakit.errors import BadRequest
from ollamakit.interfaces import Cache

from .hparams import HParams

# ggml type ids. float32 is not a server setting (Ollama has none): the agreement tests run both
# engines with it, so that a cache's rounding does not hide a difference in the arithmetic.
CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2, "f32": 0}
# (values per block, bytes per block) of each cache type, as ggml lays them out
CACHE_BLOCKS = {"f16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18), "f32": (1, 4)}
_serials = itertools.count(1)


def row_bytes(cache_type: str, values: int) -> int:
    """Bytes of one row of ``values`` in a cache type (ggml's ``ggml_row_size``)."""
    per_block, size = CACHE_BLOCKS[cache_type]
    return -(-values // per_block) * size


def cache_row_bytes(hp: HParams, cache_type: str) -> int:
    """Bytes one position takes across every layer."""
    return hp.n_layer * (row_bytes(cache_type, hp.kv_dim) + row_bytes(cache_type, hp.v_dim))


class GraphKVCache(Cache):
    def __init__(self, lib, hp: HParams, num_ctx: int, cache_type: str = "f16", rotate=None):
        from ollamakit.lib.ggml.graph import Tensors

        if num_ctx < 1:
            raise BadRequest(f"num_ctx must be positive, got {num_ctx}")
        self.lib = lib
        self.hp = hp
        self.num_ctx = num_ctx
        self.n_past = 0
        self.cache_type = cache_type
        self.serial = next(_serials)  # names this cache in kept graphs (ids of freed objects recur)
        self._rotate = rotate  # rotate(cache, first, count, delta): re-rope keys in place
        self.ggml_type = CACHE_TYPES[cache_type]
        self.k_row = lib.ggml_row_size(self.ggml_type, hp.kv_dim)  # bytes of one position's keys
        self.v_row = lib.ggml_row_size(self.ggml_type, hp.v_dim)
        self.k_head = lib.ggml_row_size(self.ggml_type, hp.head_dim)  # bytes of one head's keys
        self.v_head = lib.ggml_row_size(self.ggml_type, hp.head_dim_v)
        self._tensors = Tensors(lib, 2 * hp.n_layer)
        self.keys = [
            self._tensors.new(self.ggml_type, hp.kv_dim, num_ctx) for _ in range(hp.n_layer)
        ]
        self.values = [
            self._tensors.new(self.ggml_type, hp.v_dim, num_ctx) for _ in range(hp.n_layer)
        ]
        self.nbytes = self._tensors.allocate()
        # Attention reads whole blocks of cells and masks the unused ones; zeros there keep
        # stray bits (NaN) out of any kernel that multiplies before it masks.
        lib.ggml_backend_buffer_clear(self._tensors.buffer, 0)

    @property
    def free(self) -> int:
        return self.num_ctx - self.n_past

    def truncate(self, n: int) -> int:
        """Forget every token after the first ``n``; returns how many it keeps."""
        if n < 0:
            raise ValueError(f"cannot truncate a cache to {n} tokens")
        self.n_past = min(self.n_past, n)
        return self.n_past

    def clear(self) -> None:
        self.n_past = 0

    # -- views for a step ----------------------------------------------------------------------

    def attend_view(self, step, layer: int, first: int, stop: int, values: bool) -> int:
        """Positions [first, stop) as (head_dim, positions, n_kv): what flash attention reads."""
        hp = self.hp
        if values:
            tensor, row, head, dim = self.values[layer], self.v_row, self.v_head, hp.head_dim_v
        else:
            tensor, row, head, dim = self.keys[layer], self.k_row, self.k_head, hp.head_dim
        return step.op("view_3d", tensor, dim, stop - first, hp.n_head_kv, row, head, first * row)

    # -- context shift -------------------------------------------------------------------------

    def shift(self, keep: int, discard: int) -> bool:
        """Drop positions [keep, keep + discard): later rows move down by ``discard`` and their
        keys are rotated back by as many positions."""
        if discard <= 0:
            return True
        if keep < 0 or keep + discard > self.n_past:
            raise ValueError(f"cannot drop {discard} tokens after {keep} of {self.n_past}")
        moved = self.n_past - keep - discard
        for tensors, row in ((self.keys, self.k_row), (self.values, self.v_row)):
            for tensor in tensors:
                rows = self._rows(tensor, row)
                rows[keep : keep + moved] = rows[
                    keep + discard : keep + discard + moved
                ]  # numpy handles overlap
        self.n_past = keep + moved
        if moved and self._rotate is not None:
            self._rotate(self, keep, moved, -discard)
        return True

    def _rows(self, tensor: int, row: int) -> np.ndarray:
        import ctypes

        from ollamakit.lib.ggml.lib import tensor as struct

        buffer = (ctypes.c_uint8 * (row * self.num_ctx)).from_address(struct(tensor).data)
        return np.frombuffer(buffer, np.uint8).reshape(self.num_ctx, row)

    def close(self) -> None:
        self._tensors.close()
