"""The key/value cache of one sequence, preallocated to its context length.

Keys are stored after rope, so positions are baked in: appending never touches old entries, and
dropping the tail (``truncate``) is just moving ``n_past`` back. The arrays are allocated but not
written until used, so on the CPU the memory they hold grows with the tokens actually cached.
"""

from __future__ import annotations

from ollamakit.errors import BadRequest

from .hparams import HParams


class KVCache:
    def __init__(self, xp, hp: HParams, num_ctx: int):
        if num_ctx < 1:
            raise BadRequest(f"num_ctx must be positive, got {num_ctx}")
        self.num_ctx = num_ctx
        self.n_past = 0
        # (n_kv, num_ctx, head_dim) per layer: one contiguous block per key/value head, so the
        # cached prefix of each head is a contiguous slice for the attention matmul.
        self.keys = [xp.empty((hp.n_head_kv, num_ctx, hp.head_dim), dtype=xp.float32) for _ in range(hp.n_layer)]
        self.values = [xp.empty((hp.n_head_kv, num_ctx, hp.head_dim_v), dtype=xp.float32) for _ in range(hp.n_layer)]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.keys) + sum(a.nbytes for a in self.values)

    @property
    def free(self) -> int:
        return self.num_ctx - self.n_past

    def truncate(self, n: int) -> None:
        """Forget every token after the first ``n`` (a no-op when it holds no more than ``n``)."""
        if n < 0:
            raise ValueError(f"cannot truncate a cache to {n} tokens")
        self.n_past = min(self.n_past, n)

    def clear(self) -> None:
        self.n_past = 0
