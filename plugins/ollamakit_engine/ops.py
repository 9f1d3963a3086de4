"""The engine's kernels, written once against an array module ``xp`` (numpy or cupy).

They work in place on preallocated float32 buffers wherever the array module allows, because on
the CPU the cost of a small model is as much allocation and memory traffic as arithmetic. A compute
backend may replace any of them: ``Ops(backend)`` binds every callable in ``backend.kernels``
(a mapping of name to function taking the same arguments) over the method of the same name.

They compute in plain float32.
"""

from __future__ import annotations

import math
import threading

GELU_COEF = math.sqrt(2.0 / math.pi)
PAD_COLUMNS = 64  # padded matrix widths are multiples of this (see Ops.padded_width)
ELEMENTWISE_BLOCK = 1 << 16  # elements per block of multi-pass elementwise kernels (256 KiB)
FEW_QUERIES = (
    32  # query rows (times heads per key head) below which attention takes the keys-first product
)


class Ops:
    def __init__(self, backend):
        self.backend = backend
        self.xp = backend.xp
        # Host arrays: a scalar read back costs nothing, so one-row kernels may compute in Python.
        self.on_host = getattr(self.xp, "__name__", "") == "numpy"
        # Buffers per thread: a prompt may run as two parts on two threads at once (model.py).
        self._buffers = threading.local()
        self.matvec_threading_elements = getattr(backend, "matvec_threading_elements", 0)
        for name, kernel in (getattr(backend, "kernels", None) or {}).items():
            setattr(self, name, kernel)

    def _own(self, kind: str) -> dict:
        """This thread's reusable buffers of one kind, by width."""
        buffers = getattr(self._buffers, kind, None)
        if buffers is None:
            buffers = {}
            setattr(self._buffers, kind, buffers)
        return buffers

    def scratch(self, rows: int, width: int):
        """A reusable (rows, width) float32 buffer, one per width (and thread)."""
        buffers = self._own("scratch")
        buffer = buffers.get(width)
        if buffer is None or buffer.shape[0] < rows:
            buffer = self.xp.empty(
                (max(rows, 2 * (0 if buffer is None else buffer.shape[0])), width), self.xp.float32
            )
            buffers[width] = buffer
        return buffer[:rows]

    def use_threads(self, count: int | None) -> None:
        """Compute with ``count`` threads (None: as the backend decides). On one thread no
        product is threaded, so no matrix is padded up to the threaded size.

        Measured and not taken: sharing the rows of long elementwise kernels with a helper
        thread (numpy runs them on one core). In a Gemma 3 prompt it was ~4% slower: right
        after each product OpenBLAS's own worker still spins on the other core."""
        if count == 1:
            self.matvec_threading_elements = 0

    @staticmethod
    def by_rows(kernel, rows: int, width: int) -> None:
        """``kernel(low, high)`` over blocks of rows of about ``ELEMENTWISE_BLOCK`` elements, so
        that a kernel's several passes stay in the core's cache. Kernels touch only their own
        rows, so the values are those of one pass over the whole."""
        block = max(1, ELEMENTWISE_BLOCK // max(1, width))
        for low in range(0, rows, block):
            kernel(low, min(low + block, rows))

    # -- storage -----------------------------------------------------------------------------

    def matrix(self, weight):
        """A weight matrix given as (out, in), stored transposed: (in, out), contiguous.

        Both layouts stream the same bytes for one row, but OpenBLAS multiplies a few rows (the
        batched decode of concurrent requests) about twice as fast with this one."""
        return self.xp.ascontiguousarray(self.backend.asarray(weight).T, dtype=self.xp.float32)

    def padded_width(self, rows: int, cols: int) -> int:
        """Columns to store for a (rows, cols) matrix: ``cols``, or more when zero columns would
        take it to the size at which the BLAS multiplies a vector on every core. Only matrices
        just under that size gain (at most half again the bytes, read about twice as fast).

        Widths stay multiples of ``PAD_COLUMNS``: BLAS kernels sum a tail of columns in another
        order, and padding must not change the value of any real column."""
        threshold = self.matvec_threading_elements
        if not threshold or rows * cols >= threshold or cols % PAD_COLUMNS:
            return cols
        padded = -(-threshold // rows)
        padded = -(-padded // PAD_COLUMNS) * PAD_COLUMNS
        return padded if 2 * padded <= 3 * cols else cols

    def vector(self, values):
        return self.xp.ascontiguousarray(
            self.backend.asarray(values), dtype=self.xp.float32
        ).reshape(-1)

    # -- kernels -----------------------------------------------------------------------------

    def linear(self, x, linear, out=None):
        """``x @ W`` for x (rows, in) and a ``Linear`` W stored (in, out)."""
        if linear.width is not None:
            if x.shape[0] > 1:
                # Several rows take the real columns (a strided view BLAS reads in place): a
                # matrix product of another width may sum in another order.
                return self.xp.dot(x, linear.weight[:, : linear.width], out=out)
            # One row: the whole padded matrix, so BLAS uses every core; keep the real columns.
            stored = linear.weight.shape[1]
            padded = self._own("padded")
            full = padded.get(stored)
            if full is None:
                full = padded[stored] = self.xp.empty((1, stored), self.xp.float32)
            product = self.xp.dot(x, linear.weight, out=full)[:, : linear.width]
            if out is None:
                return product.copy()
            out[...] = product
            return out
        return self.xp.dot(x, linear.weight, out=out)

    def take_rows(self, x, rows):
        """Rows ``rows`` of x (a new array): those the last layer carries on past attention."""
        return x[list(rows)]

    def embed(self, table, ids, out):
        """Rows ``ids`` of an embedding stored transposed (width, vocab), into out (rows, width)."""
        out[...] = self.xp.take(table, ids, axis=1).T
        return out

    def rms_norm(self, x, weight, eps: float, out=None):
        """RMS-normalise the last axis of ``x`` and multiply by ``weight`` (into ``out``)."""
        xp = self.xp
        if self.on_host and x.ndim == 2 and x.shape[0] == 1:
            # One row (decoding): a BLAS dot and the scale in Python floats take three numpy
            # calls where the general path takes seven; ~3 us instead of ~8, 61 times a token.
            row = x[0]
            scale = 1.0 / math.sqrt(float(xp.dot(row, row)) / row.shape[0] + eps)
            out = xp.multiply(x, scale, out=out)
            out *= weight
            return out
        scale = xp.einsum("...i,...i->...", x, x)
        scale *= 1.0 / x.shape[-1]
        scale += eps
        xp.sqrt(scale, out=scale)
        xp.reciprocal(scale, out=scale)
        out = xp.multiply(x, scale[..., None], out=out)
        out *= weight
        return out

    def gated_activation(self, gate, up, activation: str):
        """``act(gate) * up`` into ``gate``."""
        xp = self.xp
        if activation not in ("silu", "gelu_tanh"):
            raise ValueError(f"unknown activation {activation!r}")

        # A prompt's (rows, n_ff) goes in blocks of rows through one small temporary, so the ten
        # passes below stay in the core's cache instead of streaming a prompt-sized temporary
        # through memory (Gemma 3, 512 rows: 5.6 ms a layer in one piece, ~3.2 in blocks).
        def kernel(low: int, high: int) -> None:
            g, u = gate[low:high], up[low:high]
            t = self.scratch(*g.shape)
            if activation == "silu":
                # gate * sigmoid(gate) = gate / (1 + exp(-gate))
                xp.negative(g, out=t)
                self.exp(t)
                t += 1.0
                xp.divide(g, t, out=g)
            else:
                # 0.5 * g * (1 + tanh(c * (g + 0.044715 g^3)))
                xp.multiply(g, g, out=t)
                t *= 0.044715
                t += 1.0
                t *= g
                t *= GELU_COEF
                xp.tanh(t, out=t)
                t += 1.0
                t *= 0.5
                g *= t
            g *= u

        self.by_rows(kernel, *gate.shape)
        return gate

    def rope(self, x, cos, sin):
        """Rotate x (rows, heads, dim) in place, pairing dimension i with i + rope_dim/2."""
        xp = self.xp
        rows, heads, _ = x.shape
        half = cos.shape[-1]

        # In blocks of rows through a small temporary, as gated_activation (2.4 -> 1.8 ms a
        # Gemma 3 layer for 512 rows).
        def kernel(low: int, high: int) -> None:
            part, c, s = x[low:high], cos[low:high], sin[low:high]
            temp = self.scratch((high - low) * heads, 2 * half).reshape(high - low, heads, 2 * half)
            x1, x2 = part[..., :half], part[..., half : 2 * half]
            a = xp.multiply(x1, s, out=temp[..., :half])
            b = xp.multiply(x2, s, out=temp[..., half:])
            x1 *= c
            x1 -= b
            x2 *= c
            x2 += a

        self.by_rows(kernel, rows, heads * 2 * half)
        return x

    def softmax(self, scores, axis: int = -1):
        """Softmax along ``axis``, in place."""
        scores -= scores.max(axis=axis, keepdims=True)
        self.exp(scores)
        scores /= scores.sum(axis=axis, keepdims=True)
        return scores

    def exp(self, x):
        """exp in place."""
        self.xp.exp(x, out=x)
        return x

    def store_kv(self, cache_rows, new_rows):
        """Write new keys or values (rows, n_kv, dim) into their cache slice (n_kv, rows, dim)."""
        cache_rows[...] = new_rows.transpose(1, 0, 2)

    def attention(self, q, keys, values, mask, out, scale: float = 1.0):
        """Grouped-query attention of one sequence's new rows against its cached keys.

        q (rows, n_head, dim); keys/values (n_kv, cached, dim); mask (rows, cached) additive or
        None; scores are multiplied by ``scale``; out (rows, n_head * dim_v). Query head h reads
        key/value head h // (n_head / n_kv).
        """
        xp = self.xp
        rows, n_head, dim = q.shape
        n_kv, cached, dim_v = values.shape
        group = n_head // n_kv
        width = group * rows
        if width <= FEW_QUERIES:
            # Decoding: with the cached keys as the large left operand, BLAS runs several times
            # faster than the transposed product.
            grouped = xp.ascontiguousarray(q.reshape(rows, n_kv, group, dim).transpose(1, 3, 2, 0))
            grouped = grouped.reshape(n_kv, dim, width)
            scores = xp.ascontiguousarray(xp.matmul(keys, grouped).transpose(0, 2, 1))
        else:
            grouped = (
                q.reshape(rows, n_kv, group, dim).transpose(1, 2, 0, 3).reshape(n_kv, width, dim)
            )
            scores = xp.matmul(grouped, keys.transpose(0, 2, 1))
        # scores: (n_kv, group * rows, cached)
        if scale != 1.0:
            scores *= scale
        if mask is not None:
            by_row = scores.reshape(n_kv, group, rows, -1)  # a view: the add lands in scores
            by_row += mask
        self.softmax(scores)
        if rows == 1 and self.on_host and out.flags.c_contiguous:
            # One row: out is already laid out (n_kv, group, dim_v), so the product lands there.
            xp.matmul(scores, values, out=out.reshape(n_kv, group, dim_v))
            return out
        mixed = xp.matmul(scores, values)  # (n_kv, group * rows, dim_v)
        out[...] = (
            mixed.reshape(n_kv, group, rows, dim_v)
            .transpose(2, 0, 1, 3)
            .reshape(rows, n_head * dim_v)
        )
        return out

    def softcap(self, logits, cap: float):
        xp = self.xp
        logits *= 1.0 / cap
        xp.tanh(logits, out=logits)
        logits *= cap
        return logits
