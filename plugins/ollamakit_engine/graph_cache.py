"""The key/value cache of one sequence for the graph engine, in ggml tensors.

Each layer keeps keys (n_kv * head_dim, cells) and values (n_kv * head_dim_v, cells), one row
per cell (gemma4's sliding-window layers with heads of their own: ``HParams.layer``), in the cache type (float16 by default, Ollama's ``OLLAMA_KV_CACHE_TYPE``: ``q8_0`` and
``q4_0`` quantize rows as they are written, as llama.cpp does). Keys are stored after rope. The
buffer is allocated and zeroed when the sequence starts, as llama.cpp allocates its cache, so
``nbytes`` is what it holds from then on.

A layer that attends to every earlier position has ``num_ctx`` cells rounded up to ``KV_BLOCK``
(``full_cells``: llama.cpp rounds its context so), position p in cell p; the spans attention
reads then end where llama.cpp's do, so flash attention splits its sums as llama.cpp's does. A
sliding-window layer (gemma2/3, gpt-oss) never looks further back than its window, so when
``num_ctx`` is longer it keeps a ring instead, sized as llama.cpp sizes its SWA cache: the window
plus a step's rows, rounded up to ``KV_BLOCK`` cells; position p is cell p % ring. The rings hold
positions [``oldest``, ``n_past``), and the masks hide every other cell.

Latent attention (``HParams.kv_lora_rank``) caches one row per position: the latent and the
shared rope key after it; the values are the latent, read through a view of the same row, as
llama.cpp's cache holds them.

``shift`` is Ollama's context shift done as llama.cpp does it: the kept keys are rotated by the
distance they moved; nothing is evaluated again. In a full layer the rows stay in their cells, as
in llama.cpp's cache: the dropped positions' cells are freed and the next positions take them,
found as llama.cpp's ``find_slot`` finds them (``_placed`` maps positions to cells from the first
shift on). Flash attention sums the cells in their order, so this order is what keeps a quantized
cache's rounding, and with it the tokens, llama.cpp's after a shift. A ring's rows move down. llama.cpp re-ropes every
cached key, the unmoved prefix by zero positions, and rope multiplies what it rotates by its
magnitude (LongRoPE's attention factor, YaRN's correction): where that is not 1 the prefix's keys
are scaled by it again too, and so are they here.
"""

from __future__ import annotations

import ctypes
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
KV_BLOCK = 256  # attention spans (and rings) grow in blocks of this many cells, as llama.cpp's
_serials = itertools.count(1)


def row_bytes(cache_type: str, values: int) -> int:
    """Bytes of one row of ``values`` in a cache type (ggml's ``ggml_row_size``)."""
    per_block, size = CACHE_BLOCKS[cache_type]
    return -(-values // per_block) * size


def position_bytes(hp: HParams, cache_type: str) -> int:
    """Bytes one position takes in one layer (``hp`` that layer's ``HParams.layer``): its keys
    and values, or latent attention's row."""
    values = 0 if hp.kv_lora_rank else row_bytes(cache_type, hp.v_dim)
    return row_bytes(cache_type, hp.kv_dim) + values


def cache_row_bytes(hp: HParams, cache_type: str) -> int:
    """Bytes one position takes across every layer, in a cache without rings."""
    return sum(position_bytes(layer, cache_type) for layer in hp.layers)


def splits_into_blocks(hp: HParams, cache_type: str) -> bool:
    """Whether every piece of a cache row the engine views on its own (a head's keys and
    values; latent attention's latent and rope key) is whole blocks of ``cache_type``."""
    per_block = CACHE_BLOCKS[cache_type][0]
    widths = {w for layer in hp.layers for w in (layer.head_dim, layer.head_dim_v)}
    if hp.kv_lora_rank:
        widths |= {hp.kv_lora_rank, hp.rope_dim}
    return all(width % per_block == 0 for width in widths)


def ring_cells(hp: HParams, num_ctx: int, num_batch: int) -> int | None:
    """Cells of a sliding-window layer's ring (llama.cpp's SWA cache size: the window and a
    step's rows, padded to ``KV_BLOCK``), or None when ``num_ctx`` cells are no more."""
    if not hp.sliding_window or not any(hp.swa_layers):
        return None
    cells = -(-(hp.sliding_window + num_batch) // KV_BLOCK) * KV_BLOCK
    return cells if cells < num_ctx else None


def full_cells(num_ctx: int) -> int:
    """The cells of a layer that attends to every earlier position: ``num_ctx`` rounded up to
    ``KV_BLOCK``, as llama.cpp rounds its context (the extra cells are never written, only
    masked)."""
    return -(-num_ctx // KV_BLOCK) * KV_BLOCK


def cache_bytes(hp: HParams, num_ctx: int, num_batch: int, cache_type: str = "f16") -> int:
    """Bytes a ``GraphKVCache`` of ``num_ctx`` holds, without making one."""
    ring = ring_cells(hp, num_ctx, num_batch)
    return sum(
        (ring if local and ring else full_cells(num_ctx)) * position_bytes(layer, cache_type)
        for local, layer in zip(hp.swa_layers, hp.layers)
    )


class GraphKVCache(Cache):
    def __init__(
        self,
        lib,
        hp: HParams,
        num_ctx: int,
        cache_type: str = "f16",
        rotate=None,
        num_batch: int | None = None,
    ):
        from ollamakit.lib.ggml.graph import Tensors

        if num_ctx < 1:
            raise BadRequest(f"num_ctx must be positive, got {num_ctx}")
        self.lib = lib
        self.hp = hp
        self.num_ctx = num_ctx
        self.n_past = 0
        self.cache_type = cache_type
        self.serial = next(_serials)  # names this cache in kept graphs (ids of freed objects recur)
        self._rotate = rotate  # rotate(cache, runs, delta): re-rope keys in place
        # a step's rows must not overwrite what its own first row attends to
        self.ring = ring_cells(hp, num_ctx, num_batch or num_ctx)
        self.oldest = 0  # the first position the rings still hold
        self._placed: np.ndarray | None = None  # full layers' cell of each position, once shifted
        self._head = 0  # where llama.cpp's next search for free cells starts
        self.ggml_type = CACHE_TYPES[cache_type]
        size = lib.ggml_row_size
        layers = hp.layers
        # per layer: bytes of one position's keys and values, and of one head's
        self.k_row = [size(self.ggml_type, layer.kv_dim) for layer in layers]
        self.v_row = [size(self.ggml_type, layer.v_dim) for layer in layers]
        self.k_head = [size(self.ggml_type, layer.head_dim) for layer in layers]
        self.v_head = [size(self.ggml_type, layer.head_dim_v) for layer in layers]
        self.cells = [
            self.ring if self.in_ring(i) else full_cells(num_ctx) for i in range(hp.n_layer)
        ]
        self._tensors = Tensors(lib, 2 * hp.n_layer)
        self.keys = [
            self._tensors.new(self.ggml_type, layer.kv_dim, n)
            for layer, n in zip(layers, self.cells)
        ]
        if hp.kv_lora_rank:  # the values are the keys' leading columns
            self.values, self.v_row = self.keys, self.k_row
        else:
            self.values = [
                self._tensors.new(self.ggml_type, layer.v_dim, n)
                for layer, n in zip(layers, self.cells)
            ]
        self.nbytes = self._tensors.allocate()
        # Attention reads whole blocks of cells and masks the unused ones; zeros there keep
        # stray bits (NaN) out of any kernel that multiplies before it masks.
        lib.ggml_backend_buffer_clear(self._tensors.buffer, 0)

    def in_ring(self, layer: int) -> bool:
        return bool(self.ring) and self.hp.swa_layers[layer]

    @property
    def free(self) -> int:
        return self.num_ctx - self.n_past

    def truncate(self, n: int) -> int:
        """Forget every token after the first ``n``; returns how many it keeps. That is none when
        the rings no longer hold the window the token after ``n`` attends to (the caller then
        evaluates them again), as llama.cpp's SWA cache refuses such a reuse."""
        if n < 0:
            raise ValueError(f"cannot truncate a cache to {n} tokens")
        n = min(self.n_past, n)
        if n < self.n_past and self.oldest > self._window_start(n):
            n = 0
        self.n_past = n
        if self._placed is not None:
            self._free(self._placed[n:])
            self._placed = self._placed[:n]
        if n == 0:
            self.oldest = 0
            self._placed, self._head = None, 0
        return n

    def clear(self) -> None:
        self.truncate(0)

    def _window_start(self, position: int) -> int:
        """The first position a sliding-window layer attends to from ``position``."""
        return max(0, position - self.hp.sliding_window + 1) if self.ring else 0

    # -- a step --------------------------------------------------------------------------------

    def reserve(self, stop: int) -> None:
        """A step is about to write positions up to ``stop``: in the rings they take the cells of
        positions ``ring`` earlier, which are then gone, whether or not the step completes."""
        if self.ring:
            self.oldest = max(self.oldest, stop - self.ring)

    def write_cells(self, local: bool, start: int, stop: int) -> np.ndarray:
        """The cells positions [start, stop) go to, in a full layer or a ring."""
        positions = np.arange(start, stop, dtype=np.int64)
        if local and self.ring:
            return positions % self.ring
        if self._placed is None:
            return positions
        return self._place(stop)[start:stop]

    def _place(self, stop: int) -> np.ndarray:
        """Full layers' cells of positions [0, stop): the new ones take free cells as llama.cpp's
        ``find_slot`` takes them for one step, from its head on, wrapping, and from the first
        cell when the head lies past twice the step beyond the cells in use."""
        placed = self._placed
        assert placed is not None
        new = stop - len(placed)
        if new <= 0:
            return placed
        total = full_cells(self.num_ctx)
        head = 0 if self._head > len(placed) + 2 * new else self._head
        taken = np.zeros(total, bool)
        taken[placed] = True
        order = np.roll(np.arange(total), -head)
        cells = order[~taken[order]][:new]
        if len(cells) < new:
            raise ValueError(f"no free cells for {new} positions")
        self._placed = np.concatenate([placed, cells])
        self._head = int(cells[-1]) + 1
        return self._placed

    def _free(self, cells: np.ndarray) -> None:
        """llama.cpp's head after cells are freed: back to the first of them, if it is lower."""
        if len(cells):
            self._head = min(self._head, int(cells.min()))

    def span(self, local: bool, stop: int) -> int:
        """The cells a step that ends at ``stop`` attends over: those written so far, rounded up
        to a multiple of ``KV_BLOCK`` (the rest are masked out), as llama.cpp's ``n_kv``. The same
        span for many steps lets a decode graph be reused (``GraphRunner``)."""
        cells = self.ring if local and self.ring else full_cells(self.num_ctx)
        if self._placed is not None and not (local and self.ring):
            stop = int(self._place(stop)[:stop].max(initial=-1)) + 1  # llama.cpp's used_max_p1
        return min(cells, -(-stop // KV_BLOCK) * KV_BLOCK)

    def cell_positions(self, local: bool, stop: int) -> np.ndarray:
        """The position each cell of ``span`` holds once positions up to ``stop`` are written;
        -1 where a ring's cell holds none."""
        cells = np.arange(self.span(local, stop), dtype=np.int64)
        if not (local and self.ring):
            if self._placed is None:
                return cells
            held = np.full(len(cells), -1, np.int64)
            held[self._place(stop)[:stop]] = np.arange(stop)
            return held
        # the latest position below stop that falls in each cell
        positions = cells + self.ring * ((stop - 1 - cells) // self.ring)
        return np.where(positions >= self.oldest, positions, -1)

    def attend_view(self, step, layer: int, span: int, values: bool) -> int:
        """Cells [0, span) as (head_dim, cells, n_kv): what flash attention reads."""
        hp = self.hp.layer(layer)
        if values:
            tensor, row, head, dim = self.values[layer], self.v_row, self.v_head, hp.head_dim_v
        else:
            tensor, row, head, dim = self.keys[layer], self.k_row, self.k_head, hp.head_dim
        return step.op("view_3d", tensor, dim, span, hp.n_head_kv, row[layer], head[layer], 0)

    # -- context shift -------------------------------------------------------------------------

    def shift(self, keep: int, discard: int) -> bool:
        """Drop positions [keep, keep + discard): later rows move down by ``discard`` and their
        keys are rotated back by as many positions. False, with nothing changed, when the rings
        would then lack part of the window the next token attends to."""
        if discard <= 0:
            return True
        if keep < 0 or keep + discard > self.n_past:
            raise ValueError(f"cannot drop {discard} tokens after {keep} of {self.n_past}")
        end = self.n_past - discard
        # the rings' first position after the shift: the dropped ones are gone, and the kept
        # prefix only as far as the rings held it
        oldest = self.oldest if self.oldest <= keep else max(keep, self.oldest - discard)
        if oldest > self._window_start(end):
            return False
        moved = end - keep
        runs: list[tuple[int, int, int]] = []
        still: list[tuple[int, int, int]] = []  # the kept prefix's cells, re-roped by zero
        placed = self._placed[: self.n_past] if self._placed is not None else np.arange(self.n_past)
        kept = np.concatenate([placed[:keep], placed[keep + discard :]])
        for layer in range(self.hp.n_layer):
            if self.in_ring(layer):
                first = max(keep, oldest)  # the first moved position the ring holds
                source = self.write_cells(True, first + discard, end + discard)
                target = self.write_cells(True, first, end)
                runs += [(layer, cell, count) for cell, count in _runs(target)]
                prefix = self.write_cells(True, min(self.oldest, keep), keep)
                still += [(layer, cell, count) for cell, count in _runs(prefix)]
            else:  # the rows stay in their cells
                runs += [(layer, cell, count) for cell, count in _runs(kept[keep:])]
                still += [(layer, cell, count) for cell, count in _runs(kept[:keep])]
                continue
            for tensors, row in self._stored():
                rows = self._rows(tensors[layer], row[layer], self.cells[layer])
                rows[target] = rows[source]  # fancy indexing copies the source first
        self.n_past, self.oldest = end, oldest
        self._free(placed[keep : keep + discard])
        self._placed = kept
        if moved and self._rotate is not None:
            self._rotate(self, [run for run in runs if run[2]], -discard)
            self._rotate(self, [run for run in still if run[2]], 0)
        return True

    # -- sharing a prefix ----------------------------------------------------------------------

    def copy_prefix(self, source: Cache, n: int) -> bool:
        """Hold ``source``'s first ``n`` positions instead of what this cache held (another
        sequence's cache of the same shape); False, with nothing changed, when it cannot."""
        if (
            not isinstance(source, GraphKVCache)
            or source is self
            or source._placed is not None  # cells in llama.cpp's order after a shift
            or (source.hp, source.num_ctx, source.ring, source.cache_type)
            != (self.hp, self.num_ctx, self.ring, self.cache_type)
            or not 0 < n <= source.n_past
            or source.oldest > source._window_start(n)
        ):
            return False
        for layer in range(self.hp.n_layer):
            cells = self.cells[layer] if self.in_ring(layer) else n  # a ring's cells, all of them
            pairs = [(self.keys, source.keys, self.k_row)]
            if self.values is not self.keys:
                pairs.append((self.values, source.values, self.v_row))
            for mine, theirs, rows in pairs:
                row = rows[layer]
                target = self._rows(mine[layer], row, self.cells[layer])
                target[:cells] = source._rows(theirs[layer], row, self.cells[layer])[:cells]
        self.n_past, self.oldest = n, source.oldest
        self._placed, self._head = None, n
        return True

    def _stored(self) -> list[tuple[list[int], list[int]]]:
        """The tensors that hold rows, with their row bytes (per layer): keys and values, or keys
        alone when the values are a view of them."""
        stored = [(self.keys, self.k_row)]
        if self.values is not self.keys:
            stored.append((self.values, self.v_row))
        return stored

    def _rows(self, tensor: int, row: int, cells: int) -> np.ndarray:
        from ollamakit.lib.ggml.lib import tensor as struct

        buffer = (ctypes.c_uint8 * (row * cells)).from_address(struct(tensor).data)
        return np.frombuffer(buffer, np.uint8).reshape(cells, row)

    def close(self) -> None:
        self._tensors.close()


def _runs(cells: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive cells as (first, count) runs (a ring's positions wrap at most once)."""
    if not len(cells):
        return []
    breaks = np.flatnonzero(np.diff(cells) != 1) + 1
    return [(int(part[0]), len(part)) for part in np.split(cells, breaks)]
