"""The decoder-only transformer: one forward step over the new tokens of several sequences.

The rows of every sequence in a step are concatenated, so each projection is one matrix product
for the whole step: prompt chunks and single decode tokens of different requests share the same
pass over the weights, which is where the throughput of concurrent requests comes from. Only
attention, which reads each sequence's own cache, runs per sequence.

The same block serves the llama family (pre-norm, SwiGLU) and gemma3 (pre- and post-norms, q/k
norms, GELU gate, sliding-window layers): the differences are hyperparameters and the tensors
a file has.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .cache import ATTENTION_ROWS, KVCache
from .hparams import HParams
from .weights import ModelWeights


@dataclass
class Segment:
    """Rows ``rows`` of a step: ``tokens`` appended to ``cache`` from position ``start``."""

    cache: KVCache
    tokens: list[int]
    start: int
    rows: slice


class Workspace:
    """Preallocated activation buffers, reused by every step (grown when a step needs more rows)."""

    def __init__(self, xp, hp: HParams):
        self.xp = xp
        self.widths = {
            "x": hp.n_embd,
            "h": hp.n_embd,
            "o": hp.n_embd,
            "qkv": hp.q_dim + hp.kv_dim + hp.v_dim,
            "attn": hp.n_head * hp.head_dim_v,
            "gate_up": 2 * hp.n_ff,
        }
        self.capacity = 0
        self.buffers: dict = {}

    def get(self, rows: int) -> dict:
        if rows > self.capacity:
            self.capacity = max(rows, 2 * self.capacity)
            self.buffers = {
                name: self.xp.empty((self.capacity, width), dtype=self.xp.float32)
                for name, width in self.widths.items()
            }
        return {name: buffer[:rows] for name, buffer in self.buffers.items()}


class PartFailed(Exception):
    """The earlier part of a prompt failed (step_in_two raises its error instead)."""


class Handoff:
    """Layer by layer, whether the earlier part of a prompt has attended there (step_in_two)."""

    def __init__(self, layers: int):
        self._attended = [threading.Event() for _ in range(layers)]
        self._failed = False

    def attended(self, index: int) -> None:
        self._attended[index].set()

    def wait(self, index: int) -> None:
        self._attended[index].wait()
        if self._failed:
            raise PartFailed

    def fail(self) -> None:
        """Stop the later part at its next layer: the earlier one failed."""
        self._failed = True
        for event in self._attended:
            event.set()


class Transformer:
    def __init__(self, hp: HParams, weights: ModelWeights, ops):
        self.hp = hp
        self.weights = weights
        self.ops = ops
        self.xp = ops.xp
        self.workspace = Workspace(self.xp, hp)
        self.helper_workspace = None  # the first part's buffers in step_in_two
        exponents = np.arange(0, hp.rope_dim, 2, dtype=np.float64) / hp.rope_dim
        factors = 1.0
        if weights.rope_factors is not None:
            factors = np.asarray(ops.backend.to_numpy(weights.rope_factors), dtype=np.float64)
        self.inv_freq_global = hp.rope_scale / (hp.rope_base**exponents) / factors
        self.inv_freq_local = None
        if hp.rope_base_local is not None:
            self.inv_freq_local = 1.0 / (hp.rope_base_local**exponents)

    # -- one step ------------------------------------------------------------------------------

    def step(
        self,
        segments: list[Segment],
        last_rows_only: bool = False,
        *,
        workspace=None,
        after=None,
        before=None,
    ):
        """Run the new rows of ``segments`` through every layer, appending to their caches.

        Returns the final hidden states (rows, n_embd), before the output norm; a view into the
        workspace, valid until the next step. With ``last_rows_only`` it returns only the last
        row of each segment (one row per segment): the last layer then writes every row's keys
        and values but carries only those rows on through attention and the feed-forward, as
        llama.cpp does for the rows it outputs (in a 512-token Gemma 3 prompt, 1/18 of the work).

        ``workspace``, ``after`` and ``before`` serve ``step_in_two``: the step's own buffers, and
        the ``Handoff`` it waits on, or signals, at each layer's attention.
        """
        hp, ops, w = self.hp, self.ops, self.weights
        rows = segments[-1].rows.stop
        ids = np.concatenate([np.asarray(s.tokens, dtype=np.int64) for s in segments])
        positions = np.concatenate([np.arange(s.start, s.start + len(s.tokens)) for s in segments])
        buf = (workspace or self.workspace).get(rows)

        x = buf["x"]
        ops.embed(w.token_embd, self.ops.backend.asarray(ids), x)
        if hp.embed_scale != 1.0:
            x *= np.float32(hp.embed_scale)

        rope_global = self._rope_tables(positions, self.inv_freq_global)
        rope_local = (
            self._rope_tables(positions, self.inv_freq_local)
            if self.inv_freq_local is not None
            else None
        )
        masks_global = [self._mask(s, None) for s in segments]
        masks_local = (
            [self._mask(s, hp.sliding_window) for s in segments]
            if hp.sliding_window
            else masks_global
        )

        q_end, k_end = hp.q_dim, hp.q_dim + hp.kv_dim
        ff = hp.n_ff
        last_layer = len(w.layers) - 1
        for index, layer in enumerate(w.layers):
            local = hp.swa_layers[index]
            h = ops.rms_norm(x, layer.attn_norm, hp.norm_eps, out=buf["h"][:rows])
            qkv = ops.linear(h, layer.qkv, out=buf["qkv"][:rows])
            if layer.qkv_bias is not None:
                qkv += layer.qkv_bias
            q = qkv[:, :q_end].reshape(rows, hp.n_head, hp.head_dim)
            k = qkv[:, q_end:k_end].reshape(rows, hp.n_head_kv, hp.head_dim)
            v = qkv[:, k_end:].reshape(rows, hp.n_head_kv, hp.head_dim_v)
            if layer.q_norm is not None:
                ops.rms_norm(q, layer.q_norm, hp.norm_eps, out=q)
                ops.rms_norm(k, layer.k_norm, hp.norm_eps, out=k)
            cos, sin = rope_local if local else rope_global
            # Queries and keys are adjacent columns of qkv: one rotation covers both heads' sets.
            ops.rope(qkv[:, :k_end].reshape(rows, hp.n_head + hp.n_head_kv, hp.head_dim), cos, sin)
            if hp.scale_queries:
                q *= np.float32(hp.attn_scale)

            masks = masks_local if local else masks_global
            if after is not None:
                after.wait(index)
            if last_rows_only and index == last_layer:
                attn = buf["attn"][: len(segments)]
                for row, (segment, mask) in enumerate(zip(segments, masks)):
                    self._attend(index, segment, q, k, v, mask, attn, local, output_row=row)
                picks = [segment.rows.stop - 1 for segment in segments]
                rows = len(picks)
                x = ops.take_rows(x, picks)
            else:
                attn = buf["attn"][:rows]
                for segment, mask in zip(segments, masks):
                    self._attend(index, segment, q, k, v, mask, attn, local)
            if before is not None:
                before.attended(index)

            o = ops.linear(attn, layer.attn_out, out=buf["o"][:rows])
            if layer.post_attn_norm is not None:
                ops.rms_norm(o, layer.post_attn_norm, hp.norm_eps, out=o)
            x += o

            h = ops.rms_norm(x, layer.ffn_norm, hp.norm_eps, out=buf["h"][:rows])
            gate_up = ops.linear(h, layer.gate_up, out=buf["gate_up"][:rows])
            act = ops.gated_activation(gate_up[:, :ff], gate_up[:, ff:], hp.activation)
            down = ops.linear(act, layer.down, out=buf["o"][:rows])
            if layer.post_ffn_norm is not None:
                ops.rms_norm(down, layer.post_ffn_norm, hp.norm_eps, out=down)
            x += down

        for segment in segments:
            segment.cache.n_past = segment.start + len(segment.tokens)
        return x

    def step_in_two(self, segment: Segment):
        """``step([segment], last_rows_only=True)`` as two parts at once: the first rows on a
        helper thread, the rest on this one, each multiplying on one core.

        On the CPU the matrix products of a prompt use every core, but between them numpy's
        elementwise kernels, the norms and attention run on one while the others wait. Two parts
        keep both cores busy throughout; the later part follows the earlier layer by layer, since
        its rows attend to the earlier rows' keys (and a sliding-window ring may reuse the rows
        that the earlier part reads). The caller gives the BLAS one thread.
        """
        tokens, start = segment.tokens, segment.start
        # on a block boundary, so every row attends in the same blocks as in one step
        split = len(tokens) // 2 // ATTENTION_ROWS * ATTENTION_ROWS or len(tokens) // 2
        first = Segment(segment.cache, tokens[:split], start, slice(0, split))
        rest = Segment(segment.cache, tokens[split:], start + split, slice(0, len(tokens) - split))
        handoff = Handoff(len(self.weights.layers))
        if self.helper_workspace is None:
            self.helper_workspace = Workspace(self.xp, self.hp)
        failure = []

        def lead():
            try:
                self.step([first], True, workspace=self.helper_workspace, before=handoff)
            except BaseException as error:  # the other part must not wait for a layer forever
                failure.append(error)
                handoff.fail()

        helper = threading.Thread(target=lead, name="ollamakit-prompt-part", daemon=True)
        helper.start()
        try:
            hidden = self.step([rest], True, after=handoff)
        except PartFailed:
            pass  # the helper's own error is raised below
        finally:
            helper.join()
        if failure:
            raise failure[0]
        segment.cache.n_past = start + len(tokens)
        return hidden

    def _attend(
        self, index: int, segment: Segment, q, k, v, mask, out, local: bool, output_row=None
    ) -> None:
        """Attention of ``segment``'s rows, writing their keys and values to its cache first.
        With ``output_row`` only its last row attends, into that row of ``out``."""
        layer, rows, start = segment.cache.layers[index], segment.rows, segment.start
        first = self._first_visible(start, local)  # column 0 of the mask
        scale = 1.0 if self.hp.scale_queries else self.hp.attn_scale
        queries, results, keys, values = q[rows], out[rows], k[rows], v[rows]
        count = len(segment.tokens)
        # Long prompts attend in blocks of rows, each against the keys it can see: the causal
        # half of the score matrix (and, in a sliding window, what lies behind the window) is
        # never computed, and each block's scores stay in cache. Each block's keys are written
        # just before it attends, so a ring never needs more than a window and one block.
        for low in range(0, count, ATTENTION_ROWS):
            high = min(low + ATTENTION_ROWS, count)
            layer.write(self.ops.store_kv, start + low, keys[low:high], values[low:high])
            if output_row is not None and high < count:
                continue
            visible, stop = self._first_visible(start + low, local), start + high
            block_mask = None if mask is None else mask[low:high, visible - first : stop - first]
            block_keys, block_values = layer.span(visible, stop)
            if output_row is None:
                self.ops.attention(
                    queries[low:high],
                    block_keys,
                    block_values,
                    block_mask,
                    results[low:high],
                    scale,
                )
            else:  # the last row, against the keys and mask its block would give it
                row_mask = None if block_mask is None else block_mask[-1:]
                target = out[output_row : output_row + 1]
                self.ops.attention(
                    queries[count - 1 : count], block_keys, block_values, row_mask, target, scale
                )

    def _first_visible(self, start: int, local: bool) -> int:
        """The oldest cached position that the first new row may attend to."""
        if local and self.hp.sliding_window:
            return max(0, start - self.hp.sliding_window + 1)
        return 0

    def _mask(self, segment: Segment, window: int | None):
        """Additive mask (rows, visible keys): causal, and within ``window`` positions if given.

        A single new row sees every visible cached key, so it needs no mask.
        """
        count = len(segment.tokens)
        if count == 1:
            return None
        first = self._first_visible(segment.start, window is not None)
        query_pos = np.arange(segment.start, segment.start + count)[:, None]
        key_pos = np.arange(first, segment.start + count)[None, :]
        visible = key_pos <= query_pos
        if window is not None:
            visible &= query_pos - key_pos < window
        mask = np.where(visible, np.float32(0), np.float32(-np.inf)).astype(np.float32)
        return self.ops.backend.asarray(mask)

    def _rope_tables(self, positions: np.ndarray, inv_freq: np.ndarray):
        angles = np.multiply.outer(positions.astype(np.float64), inv_freq)
        cos = np.cos(angles).astype(np.float32)[:, None, :]
        sin = np.sin(angles).astype(np.float32)[:, None, :]
        return self.ops.backend.asarray(cos), self.ops.backend.asarray(sin)

    # -- outputs -------------------------------------------------------------------------------

    def normed(self, hidden):
        """The output norm of hidden rows (a new array)."""
        return self.ops.rms_norm(hidden, self.weights.output_norm, self.hp.norm_eps)

    def logits(self, hidden):
        """Logits (rows, vocab) for final hidden rows."""
        logits = self.ops.linear(self.normed(hidden), self.weights.output)
        if self.hp.logit_softcap:
            self.ops.softcap(logits, self.hp.logit_softcap)
        return logits
