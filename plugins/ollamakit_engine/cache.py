"""The key/value cache of one sequence.

Keys are stored after rope, so positions are baked in: appending never touches old entries,
dropping the tail (``truncate``) is just moving ``n_past`` back, and taking another sequence's
prefix (``copy_prefix``) is copying its rows. The arrays are allocated but not written until
used, so on the CPU the memory they hold grows with the tokens actually cached.

A layer that attends through a sliding window (gemma3's local layers) never reads further back
than its window, so when ``num_ctx`` is long it keeps a ring instead of the whole context: its
memory stays the same whatever ``num_ctx`` is.
"""

from __future__ import annotations

from ollamakit.errors import BadRequest
from ollamakit.interfaces import Cache

from .hparams import HParams

# Prompt rows per attention block. The model writes a block's keys, then attends with it
# (``Transformer._attend``), so a ring holds the window behind a block's first row and the block.
ATTENTION_ROWS = 128


class LayerCache:
    """Keys (n_kv, length, head_dim) and values (n_kv, length, head_dim_v) of one layer.

    Without ``period`` position p is row p. With it the layer is a ring: position p is row
    p % period and again row p % period + period. Writing twice costs a few rows per step, and in
    return any ``period`` consecutive positions are one contiguous slice in position order, so
    attention reads them in place and sums in the same order as over a full cache.
    """

    def __init__(self, xp, hp: HParams, num_ctx: int, period: int | None = None):
        self.period = period
        length = num_ctx if period is None else 2 * period
        # One contiguous block per key/value head, so a span of positions is a strided slice
        # the attention matmul reads without copying.
        self.keys = xp.empty((hp.n_head_kv, length, hp.head_dim), dtype=xp.float32)
        self.values = xp.empty((hp.n_head_kv, length, hp.head_dim_v), dtype=xp.float32)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes

    def write(self, store, start: int, keys, values) -> None:
        """Store new rows (rows, n_kv, dim) at positions ``start``... through ``store``
        (``Ops.store_kv``, which writes (rows, n_kv, dim) into a (n_kv, rows, dim) slice)."""
        count = keys.shape[0]
        if self.period is None:
            store(self.keys[:, start : start + count], keys)
            store(self.values[:, start : start + count], values)
            return
        period = self.period
        if count > period:
            raise ValueError(f"{count} rows do not fit a ring of {period}")
        row = start % period
        first = min(count, period - row)  # rows before the ring wraps
        for low, high, at in ((0, first, row), (first, count, 0)):
            if low == high:
                continue
            for base in (at, at + period):
                store(self.keys[:, base : base + high - low], keys[low:high])
                store(self.values[:, base : base + high - low], values[low:high])

    def span(self, first: int, stop: int):
        """Keys and values of positions [first, stop), in order: (n_kv, stop - first, dim)."""
        if self.period is None:
            return self.keys[:, first:stop], self.values[:, first:stop]
        if stop - first > self.period:
            raise ValueError(f"positions {first}..{stop} do not fit a ring of {self.period}")
        row = first % self.period
        return self.keys[:, row : row + stop - first], self.values[:, row : row + stop - first]

    def oldest(self, n_past: int) -> int:
        """The oldest position still held after ``n_past`` positions were written."""
        return 0 if self.period is None else max(0, n_past - self.period)


def ring_period(hp: HParams, num_ctx: int) -> int | None:
    """The ring length for ``hp``'s sliding-window layers, or None when a full cache of
    ``num_ctx`` is no larger."""
    if not hp.sliding_window:
        return None
    period = hp.sliding_window + ATTENTION_ROWS
    return period if 2 * period < num_ctx else None


def cache_bytes(hp: HParams, num_ctx: int, ring: bool = True) -> int:
    """Bytes a ``KVCache`` of ``num_ctx`` takes once filled, without allocating it."""
    period = ring_period(hp, num_ctx) if ring else None
    per_position = 4 * hp.n_head_kv * (hp.head_dim + hp.head_dim_v)
    return sum(
        per_position * (2 * period if local and period else num_ctx) for local in hp.swa_layers
    )


class KVCache(Cache):
    def __init__(self, xp, hp: HParams, num_ctx: int, ring: bool = True):
        if num_ctx < 1:
            raise BadRequest(f"num_ctx must be positive, got {num_ctx}")
        self.num_ctx = num_ctx
        self.hp = hp
        # The furthest position ever written since the cache was last emptied: a ring's rows
        # hold the period before it, whatever ``n_past`` was later truncated to.
        self.reach = 0
        self._n_past = 0
        period = ring_period(hp, num_ctx) if ring else None
        self.layers = [
            LayerCache(xp, hp, num_ctx, period if local else None) for local in hp.swa_layers
        ]

    @property
    def n_past(self) -> int:
        return self._n_past

    @n_past.setter
    def n_past(self, n: int) -> None:
        self._n_past = n
        self.reach = max(self.reach, n) if n else 0

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    @property
    def free(self) -> int:
        return self.num_ctx - self.n_past

    def truncate(self, n: int) -> int:
        """Forget every token after the first ``n`` (a no-op when it holds no more than ``n``);
        returns how many it keeps. That is fewer, zero, when a ring has already overwritten
        keys that the next token after ``n`` would attend to: the caller evaluates them again."""
        if n < 0:
            raise ValueError(f"cannot truncate a cache to {n} tokens")
        n = min(self.n_past, n)
        if n < self.n_past and not self._holds_window(n):
            n = 0
        self.n_past = n
        return n

    def copy_prefix(self, source: Cache, n: int) -> bool:
        """Hold ``source``'s first ``n`` positions instead of what this cache held (another
        sequence's cache from the same runner); False, with nothing changed, when the shapes
        differ or ``source``'s rings no longer hold the window of the position after ``n``."""
        if (
            not isinstance(source, KVCache)
            or source is self
            or (source.hp, source.num_ctx) != (self.hp, self.num_ctx)
            or [layer.period for layer in source.layers] != [layer.period for layer in self.layers]
            or not 0 < n <= source.n_past
            or not source._holds_window(n)
        ):
            return False
        for mine, theirs in zip(self.layers, source.layers):
            # a ring's rows all, since position p may sit at any of them; a full layer's first n
            rows = slice(None) if mine.period else slice(0, n)
            mine.keys[:, rows] = theirs.keys[:, rows]
            mine.values[:, rows] = theirs.values[:, rows]
        self._n_past, self.reach = n, source.reach
        return True

    def _holds_window(self, n: int) -> bool:
        """Whether every ring still holds the positions that position ``n`` attends to."""
        if not self.hp.sliding_window:
            return True
        needed = max(0, n - self.hp.sliding_window + 1)  # the window of position n
        return all(layer.oldest(self.reach) <= needed for layer in self.layers)

    def clear(self) -> None:
        self.n_past = 0
