"""llama.cpp's activation rounding before a quantized product, for weight types whose ggml kernel
``LlamaCppOps`` (ggml_numerics.py) does not reproduce bit for bit.

The reference engine does not multiply float32 activations by float32 weights: it quantizes each
activation row to the weight type's partner ("vec_dot type") first. Rounding the same way before
a float32 product on the exactly dequantized weights gives the integer dot products up to float32
summation order: close to llama.cpp (a logit moves by far less than without it), not bit-exact.
"""

from __future__ import annotations

TINY = 1e-30

# Which rounding the activations get before a product with a weight of each ggml type.
_Q8_0 = {"Q4_0", "Q5_0", "Q8_0", "IQ4_NL", "MXFP4"}
_Q8_1 = {"Q4_1", "Q5_1"}


def activation_rounding(type_name: str | None) -> str | None:
    """The vec-dot partner of a weight type: "q8_0", "q8_1", "q8_K", "f16", "bf16" or None."""
    if type_name is None or type_name in ("F32", "F64"):
        return None
    if type_name == "F16":
        return "f16"
    if type_name == "BF16":
        return "bf16"
    if type_name in _Q8_0:
        return "q8_0"
    if type_name in _Q8_1:
        return "q8_1"
    return "q8_K"  # the k-quants and the i-quants


class Rounding:
    """The roundings, against array module ``xp``; every method writes into ``out``."""

    def __init__(self, xp):
        self.xp = xp

    def apply(self, kind: str | None, x, out):
        if kind is None:
            out[...] = x
        elif kind in ("q8_0", "q8_1"):
            self.q8_blocks(x, out)
        elif kind == "q8_K":
            self.q8_k(x, out)
        elif kind == "f16":
            self.f16(x, out)
        elif kind == "bf16":
            self.bf16(x, out)
        else:
            raise ValueError(f"unknown activation rounding {kind!r}")
        return out

    def f16(self, x, out=None):
        xp = self.xp
        if out is None:
            return x.astype(xp.float16).astype(xp.float32)
        out[...] = x.astype(xp.float16)
        return out

    def bf16(self, x, out):
        xp = self.xp
        bits = xp.ascontiguousarray(x, dtype=xp.float32).view(xp.uint32)
        # round to nearest even on the upper 16 bits, as ggml's FP32_TO_BF16 does
        rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        out[...] = rounded.astype(xp.uint32).view(xp.float32)
        return out

    def q8_blocks(self, x, out, sum_error: bool = False):
        """Q8_0/Q8_1: blocks of 32 scaled by amax/127 (kept as float16), values rounded to even.

        With ``sum_error``, also return (rows, blocks) what Q8_1's separately rounded block sum
        ``s = f16(d * sum(q))`` adds beyond ``f16(d) * sum(q)``.
        """
        xp = self.xp
        rows, width = x.shape
        blocks = x.reshape(rows, width // 32, 32)
        result = out.reshape(rows, width // 32, 32)
        amax = xp.abs(blocks).max(axis=-1, keepdims=True)
        # 127 / amax, and 0 for an all-zero block (written with where(), which cupy also has)
        inverse = xp.where(amax > 0, 127.0 / xp.maximum(amax, TINY), 0.0).astype(xp.float32)
        exact_scale = amax / 127.0
        scale = exact_scale.astype(xp.float16).astype(xp.float32)
        xp.multiply(blocks, inverse, out=result)
        xp.rint(result, out=result)
        error = None
        if sum_error:
            sums = result.sum(axis=-1, keepdims=True)
            error = (exact_scale * sums).astype(xp.float16).astype(xp.float32) - scale * sums
            error = error[..., 0]
        result *= scale
        return error if sum_error else out

    def q8_k(self, x, out):
        """Q8_K: blocks of 256 scaled by -max/127 (the signed value of largest magnitude)."""
        xp = self.xp
        rows, width = x.shape
        blocks = x.reshape(rows, width // 256, 256)
        result = out.reshape(rows, width // 256, 256)
        where = xp.abs(blocks).argmax(axis=-1)[..., None]
        signed_max = xp.take_along_axis(blocks, where, axis=-1)
        nonzero = signed_max != 0
        safe_max = xp.where(nonzero, signed_max, 1.0).astype(xp.float32)
        inverse = xp.where(nonzero, -127.0 / safe_max, 0.0).astype(xp.float32)
        scale = xp.where(nonzero, 1.0 / xp.where(nonzero, inverse, 1.0), 0.0).astype(xp.float32)
        xp.multiply(blocks, inverse, out=result)
        xp.rint(result, out=result)
        xp.minimum(result, 127.0, out=result)
        result *= scale
        return out
