"""ggml's k-quant products (Q4_K and Q6_K weights against Q8_K activations), bit for bit.

A k-quant weight row is cut in super-blocks of 256 with sub-block scales. ggml sums the integer
products of each super-block exactly and goes to float32 only once per super-block, so what
decides the bits is how the integers are grouped before that conversion and in which order the
float32 terms are added:

- Q4_K is repacked at load time on x86 (AVX2) into ``block_q4_Kx8`` and multiplied by
  ``ggml_gemm_q4_K_8x8_q8_K`` for each group of 4 rows of a step and ``ggml_gemv_q4_K_8x8_q8_K``
  for the rows left over. Both keep, per output, two float32 accumulators,
  ``fma(float(sum), d * d_x, acc)`` for the scaled quants and the same for ``mins x bsums``,
  subtracted at the end; the gemv adds once per super-block, the AVX512 gemm once per pair of
  sub-blocks, so a row's bits depend on which of the two took it.
- Q6_K is not repacked on x86. Below 8 activation rows ``ggml_vec_dot_q6_K_q8_K`` (AVX2) keeps 8
  integer lanes per super-block, lane l holding bytes 4l..4l+3 of every 32 quants (times their
  sub-block scale) minus ``32 * scale * bsum`` of 16-sums 2l and 2l+1, converts each lane,
  accumulates ``fma(d * d_x, lane, acc)`` over super-blocks and ends with ``hsum_float_8``. From 8
  rows this build (llama-cpp-python 0.3.36) takes its tiled gemm instead (``tiled-kernel.cpp``,
  the AVX512-VNNI microtile): one int32 per super-block, ``acc = fma(float(sum) * d, d_x, acc)``
  (the compiler contracts its ``acc + r * d_x`` to one fma). The 8-row threshold was measured
  against the build, prompt lengths 1 to 33.

Integer sums are formed here with float32 matrix products over pieces small enough to be exact
(below 2^24), then added in float64 (exact below 2^53) and rounded to float32 once, as the
``cvtepi32_ps`` of an int32 does.
"""

from __future__ import annotations

import numpy as np

from ollamakit.errors import InvalidModelFile

from .ggml_kernels import fma, hsum8

F32 = np.float32
F64 = np.float64
QK_K = 256
Q4_K_BYTES = 144  # f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
Q6_K_BYTES = 210  # 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales, f16 d


def quantize_q8_k(x):
    """Q8_K (``quantize_row_q8_K``, the reference C on x86; ``ggml_quantize_mat_q8_K_4x8`` gives
    the same values): blocks of 256 scaled by -127 / (the signed value of largest magnitude);
    integers (rows, blocks, 256) as float32, the float32 scale (rows, blocks) and the 16 sums of
    16 (rows, blocks, 16)."""
    rows, width = x.shape
    blocks = np.ascontiguousarray(x, dtype=F32).reshape(rows, width // QK_K, QK_K)
    where = np.abs(blocks).argmax(axis=-1)[..., None]  # the first of equal magnitudes, as the loop
    extreme = np.take_along_axis(blocks, where, axis=-1)[..., 0]
    nonzero = extreme != 0
    inverse = np.where(nonzero, F32(-127) / np.where(nonzero, extreme, F32(1)), F32(0)).astype(F32)
    q = np.minimum(np.rint(blocks * inverse[..., None]), F32(127))  # nearest_int: half to even
    d = np.where(nonzero, F32(1) / np.where(nonzero, inverse, F32(1)), F32(0)).astype(F32)
    sums = q.reshape(rows, width // QK_K, 16, 16).sum(axis=-1, dtype=F32)
    return q, d, sums


def _blocks(raw, size: int, out: int, width: int, type_name: str):
    if width % QK_K:
        raise InvalidModelFile(f"{type_name} rows of {width} are not whole super-blocks of {QK_K}")
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1)
    expected = out * (width // QK_K)
    if blocks.size != expected * size:
        raise InvalidModelFile(f"{type_name} tensor has {blocks.size} bytes, expected {expected * size}")
    return blocks.reshape(out, width // QK_K, size)


def _f16(blocks, offset: int):
    return blocks[..., offset : offset + 2].copy().view(np.float16)[..., 0].astype(F32)


class KQuantMatrix:
    """A k-quant weight matrix (out, width) ready for ``product``; ``rows`` reorders outputs."""

    shape: tuple[int, int]
    _per_output: tuple[str, ...]  # the arrays whose last axis is the outputs

    def rows(self, order):
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        for name in self._per_output:
            setattr(copy, name, np.ascontiguousarray(getattr(self, name)[..., order]))
        copy.shape = (self.shape[0], len(order))
        return copy


class Q4KMatrix(KQuantMatrix):
    """Q4_K: 8 sub-blocks of 32 per super-block, each with a 6-bit scale and a 6-bit minimum;
    weight = d * scale * q - dmin * min, q in 0..15."""

    _per_output = ("scaled", "mins", "d", "dmin")

    def __init__(self, raw, out: int, width: int):
        blocks = _blocks(raw, Q4_K_BYTES, out, width, "Q4_K")
        nb = width // QK_K
        d, dmin = _f16(blocks, 0), _f16(blocks, 2)  # (out, nb)
        packed = blocks[..., 4:16].astype(np.uint8)
        low = packed[..., 0:4], packed[..., 4:8], packed[..., 8:12]
        # get_scale_min_k4: sub-blocks 0-3 in the low 6 bits, 4-7 split over nibbles and top bits
        scales = np.concatenate([low[0] & 63, (low[2] & 0xF) | ((low[0] >> 6) << 4)], axis=-1)
        mins = np.concatenate([low[1] & 63, (low[2] >> 4) | ((low[1] >> 6) << 4)], axis=-1)
        qs = blocks[..., 16:].reshape(out, nb, 4, 32)
        # each 32 bytes: sub-block 2j in the low nibbles, 2j + 1 in the high ones
        q = np.stack([qs & 0x0F, qs >> 4], axis=3).reshape(out, nb, 8, 32)
        scaled = q.astype(F32) * scales[..., None].astype(F32)  # <= 945: sub-block dots stay exact
        self.shape = (width, out)
        self.scaled = np.ascontiguousarray(scaled.transpose(1, 2, 3, 0).reshape(nb * 8, 32, out))
        self.mins = np.ascontiguousarray(mins.transpose(1, 2, 0).astype(F64))  # (nb, 8, out)
        self.d = np.ascontiguousarray(d.T)
        self.dmin = np.ascontiguousarray(dmin.T)

    def product(self, x, gemm_rows: int = 0):
        """Rows below ``gemm_rows`` as the gemm computes them (it takes rows 4 at a time, but
        each row's sums are its own, so any count works), the rest as the gemv: the gemm adds to its float32 accumulators after every pair of sub-blocks, the gemv
        after every super-block."""
        rows, width = x.shape
        nb = width // QK_K
        q, dx, sums = quantize_q8_k(x)
        pieces = q.reshape(rows, nb * 8, 32).transpose(1, 0, 2)
        # every sub-block dot is below 32 * 945 * 127 < 2^24: exact in float32
        dots = np.matmul(pieces, self.scaled).astype(F64).reshape(nb, 4, 2, rows, -1)
        sums32 = sums.reshape(rows, nb, 4, 2, 2).sum(axis=-1, dtype=F64)
        minimums = np.einsum("rbpk,bpko->bpro", sums32, self.mins.reshape(nb, 4, 2, -1))
        pairs = dots.sum(axis=2)  # (nb, 4, rows, out): exact integers
        split = {"gemm": slice(0, gemm_rows), "gemv": slice(gemm_rows, rows)}
        steps = {  # what each kernel converts to float32 at a time: pairs or whole super-blocks
            "gemm": (pairs, minimums),
            "gemv": (pairs.sum(axis=1, keepdims=True), minimums.sum(axis=1, keepdims=True)),
        }
        result = np.empty((rows, self.shape[1]), F32)
        for kernel, part in split.items():
            if part.start == part.stop:
                continue
            quants, mins = (values[:, :, part] for values in steps[kernel])
            acc = np.zeros(quants.shape[2:], F32)
            acc_min = np.zeros_like(acc)
            for block in range(nb):
                row_scale = dx[part, block, None]
                scale, scale_min = self.d[block] * row_scale, self.dmin[block] * row_scale
                for piece in range(quants.shape[1]):
                    acc = fma(quants[block, piece].astype(F32), scale, acc)
                    acc_min = fma(mins[block, piece].astype(F32), scale_min, acc_min)
            result[part] = acc - acc_min
        return result


class Q6KMatrix(KQuantMatrix):
    """Q6_K: 16 sub-blocks of 16 per super-block with int8 scales; weight = d * scale * (q - 32),
    q in 0..63."""

    _per_output = ("scaled", "scales", "d")

    def __init__(self, raw, out: int, width: int):
        blocks = _blocks(raw, Q6_K_BYTES, out, width, "Q6_K")
        nb = width // QK_K
        ql = blocks[..., :128].reshape(out, nb, 2, 2, 32)  # (half, pair of 32 bytes, byte)
        qh = blocks[..., 128:192].reshape(out, nb, 2, 1, 32)
        scales = blocks[..., 192:208].view(np.int8).astype(F32)  # (out, nb, 16)
        # in each half of 128: quants 0-31 and 32-63 from the low nibbles of ql's two 32-byte
        # rows, 64-95 and 96-127 from the high nibbles; two high bits each from qh, in that order
        low = np.concatenate([ql & 0x0F, ql >> 4], axis=3)  # (out, nb, half, 4, 32)
        shifts = np.arange(0, 8, 2, dtype=np.uint8)[:, None]
        high = (qh >> shifts) & 3
        q = (low | (high << 4)).reshape(out, nb, QK_K).astype(F32)
        scaled = q * np.repeat(scales, 16, axis=-1)  # |.| <= 63 * 128
        # lane l of the vec-dot holds bytes 4l..4l+3 of each 32: element 32 c + 4 l + t. Halves of
        # 4 chunks (c) keep each piece's dot below 16 * 63 * 128 * 127 < 2^24: exact in float32.
        pieces = scaled.reshape(out, nb, 2, 4, 8, 4).transpose(1, 2, 4, 3, 5, 0)
        self.shape = (width, out)
        self.scaled = np.ascontiguousarray(pieces.reshape(nb * 16, 16, out))
        # the -32 offset: 32 * (scale * bsum) of 16-sums 2l and 2l + 1, per lane
        self.scales = np.ascontiguousarray(
            scales.reshape(out, nb, 8, 2).transpose(1, 2, 3, 0).astype(F64)
        )  # (nb, 8, 2, out)
        self.d = np.ascontiguousarray(_f16(blocks, 208).T)

    def product(self, x, tiled: bool = False):
        """The vec-dot, or with ``tiled`` the tiled gemm (see the module docstring)."""
        rows, width = x.shape
        nb = width // QK_K
        q, dx, sums = quantize_q8_k(x)
        pieces = q.reshape(rows, nb, 2, 4, 8, 4).transpose(1, 2, 4, 0, 3, 5).reshape(nb * 16, rows, 16)
        dots = np.matmul(pieces, self.scaled).astype(F64).reshape(nb, 2, 8, rows, -1)
        offsets = np.matmul(
            sums.reshape(rows, nb, 8, 2).transpose(1, 2, 0, 3).astype(F64), self.scales
        )  # (nb, 8, rows, out)
        lanes = dots[:, 0] + dots[:, 1] - 32 * offsets  # (nb, 8, rows, out): exact integers
        if tiled:
            totals = lanes.sum(axis=1).astype(F32)  # one int32 per super-block, then rounded
            acc = np.zeros(totals.shape[1:], F32)
            for block in range(nb):
                acc = fma(totals[block] * self.d[block], dx[:, block, None], acc)
            return acc
        lanes = lanes.astype(F32)
        acc = np.zeros((8,) + lanes.shape[2:], F32)
        for block in range(nb):
            scale = dx[:, block, None] * self.d[block]  # y.d * f16(x.d), one float32 product
            acc = fma(scale, lanes[block], acc)
        return hsum8(acc)
