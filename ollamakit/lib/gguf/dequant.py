"""Dequantization of ggml tensor data to float32, vectorised with numpy.

Each block decoder takes a ``(n_blocks, bytes_per_block)`` uint8 array and returns
``(n_blocks, elements_per_block)`` float32, following ggml's reference dequantizers and their order of
float32 operations (results equal the gguf package's reference bit for bit; the tests check it).
Large tensors are decoded a slice of blocks at a time into one preallocated output, which keeps the
integer temporaries small and cache-friendly.

The grid-based i-quants (IQ1/IQ2/IQ3), the ternary TQ types and NVFP4 are rare in the models we
serve; they are delegated to the ``gguf`` package's reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .constants import GGML_TYPES, ggml_type_number

_BLOCKS_PER_SLICE_BYTES = 1 << 18  # decode 256 KiB of quantized data at a time: measured fastest

# 4-bit non-linear code books (ggml's kvalues_iq4nl and kvalues_mxfp4, the latter doubled).
_IQ4NL_VALUES = np.array(
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32
)
_MXFP4_VALUES = np.array(
    [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.float32
)


def _f16(blocks: np.ndarray, at: int) -> np.ndarray:
    """The float16 at byte ``at`` of every block, as a (n, 1) float32 column."""
    return blocks[:, at : at + 2].view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """Low nibbles of all bytes, then high nibbles: ggml's layout for 32-element blocks."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


# -- 32-element block types -------------------------------------------------------------------


def _q4_0(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * (_nibbles(b[:, 2:18]).astype(np.int8) - np.int8(8))


def _q4_1(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * _nibbles(b[:, 4:20]) + _f16(b, 2)


def _fifth_bits(qh_bytes: np.ndarray) -> np.ndarray:
    """Bit j of the little-endian uint32 ``qh`` is the fifth bit of element j, as 0 or 16."""
    return np.unpackbits(qh_bytes, axis=1, bitorder="little") << 4


def _bit_planes(masks: np.ndarray) -> np.ndarray:
    """(n, 32) bytes -> (n, 8, 32): plane k holds bit k of each byte."""
    return np.unpackbits(masks[:, :, None], axis=2, bitorder="little").transpose(0, 2, 1)


def _q5_0(b: np.ndarray) -> np.ndarray:
    q = (_nibbles(b[:, 6:22]) | _fifth_bits(b[:, 2:6])).astype(np.int8) - np.int8(16)
    return _f16(b, 0) * q


def _q5_1(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * (_nibbles(b[:, 8:24]) | _fifth_bits(b[:, 4:8])) + _f16(b, 2)


def _q8_0(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * b[:, 2:34].view(np.int8)


def _q8_1(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * b[:, 4:36].view(np.int8)  # the stored block sum is not needed


def _iq4_nl(b: np.ndarray) -> np.ndarray:
    return _f16(b, 0) * _IQ4NL_VALUES[_nibbles(b[:, 2:18])]


def _mxfp4(b: np.ndarray) -> np.ndarray:
    # The shared exponent is E8M0; the code book is doubled, so the scale is 2**(e - 128).
    exponent = b[:, :1].astype(np.int32)
    scale = np.ldexp(np.float32(1.0), exponent - 128).astype(np.float32)
    return scale * _MXFP4_VALUES[_nibbles(b[:, 1:17])]


# -- 256-element super-block types (k-quants) --------------------------------------------------

_SHIFT_2BIT = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)


def _q2_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    scales = b[:, :16].reshape(n, 2, 4, 2, 1)  # [half][shift][16-element group]
    d, dmin = _f16(b, 80).reshape(n, 1, 1, 1, 1), _f16(b, 82).reshape(n, 1, 1, 1, 1)
    q = ((b[:, 16:80].reshape(n, 2, 1, 32) >> _SHIFT_2BIT) & 3).reshape(n, 2, 4, 2, 16)
    dl = d * (scales & 0x0F)
    ml = dmin * (scales >> 4)
    return (dl * q - ml).reshape(n, 256)


_SCALE_LOW_SHIFT = np.array([0] * 8 + [4] * 8, dtype=np.uint8)
_SCALE_HIGH_SHIFT = np.array([0] * 4 + [2] * 4 + [4] * 4 + [6] * 4, dtype=np.uint8)
_SCALE_LOW_BYTE = np.arange(16) % 8
_SCALE_HIGH_BYTE = 8 + np.arange(16) % 4


def _q3_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    hmask, qs, packed = b[:, :32], b[:, 32:96], b[:, 96:108]
    d = _f16(b, 108).reshape(n, 1, 1, 1, 1)
    # Sixteen 6-bit scales: low nibbles from bytes 0-7, top two bits from bytes 8-11.
    low = (packed[:, _SCALE_LOW_BYTE] >> _SCALE_LOW_SHIFT) & 0x0F
    high = (packed[:, _SCALE_HIGH_BYTE] >> _SCALE_HIGH_SHIFT) & 3
    scales = ((low | (high << 4)).astype(np.int8) - np.int8(32)).reshape(n, 2, 4, 2, 1)
    q = ((qs.reshape(n, 2, 1, 32) >> _SHIFT_2BIT) & 3).astype(np.int8)
    # A clear bit in hmask means the value is 4 lower.
    missing_high = ((_bit_planes(hmask) ^ 1) << 2).view(np.int8).reshape(n, 2, 4, 32)
    q = (q - missing_high).reshape(n, 2, 4, 2, 16)
    return ((d * scales) * q).reshape(n, 256)


def _k_scales_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eight 6-bit (scale, min) pairs of Q4_K/Q5_K from their 12 packed bytes."""
    low, mid, top = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([low & 63, (top & 0x0F) | ((low >> 6) << 4)], axis=1)
    mins = np.concatenate([mid & 63, (top >> 4) | ((mid >> 6) << 4)], axis=1)
    return scales, mins


_NIBBLE_SHIFT = np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)


def _q4_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d, dmin = _f16(b, 0).reshape(n, 1, 1), _f16(b, 2).reshape(n, 1, 1)
    scales, mins = _k_scales_mins(b[:, 4:16])
    q = ((b[:, 16:144].reshape(n, 4, 1, 32) >> _NIBBLE_SHIFT) & 0x0F).reshape(n, 8, 32)
    return ((d * scales[:, :, None]) * q - dmin * mins[:, :, None]).reshape(n, 256)


def _q5_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d, dmin = _f16(b, 0).reshape(n, 1, 1), _f16(b, 2).reshape(n, 1, 1)
    scales, mins = _k_scales_mins(b[:, 4:16])
    low = ((b[:, 48:176].reshape(n, 4, 1, 32) >> _NIBBLE_SHIFT) & 0x0F).reshape(n, 8, 32)
    high = _bit_planes(b[:, 16:48]) << 4
    return ((d * scales[:, :, None]) * (low | high) - dmin * mins[:, :, None]).reshape(n, 256)


_Q6_HIGH_SHIFT = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)


def _q6_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    ql, qh = b[:, :128].reshape(n, 2, 2, 32), b[:, 128:192].reshape(n, 2, 1, 32)
    scales = b[:, 192:208].view(np.int8).reshape(n, 2, 4, 2, 1)
    d = _f16(b, 208).reshape(n, 1, 1, 1, 1)
    # Per 128-element half: quarters 0,1 take the low nibbles of ql[0:32], ql[32:64]; 2,3 the high.
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2)
    high = (qh >> _Q6_HIGH_SHIFT) & 3
    q = ((low | (high << 4)).astype(np.int8) - np.int8(32)).reshape(n, 2, 4, 2, 16)
    return ((d * scales) * q).reshape(n, 256)


def _q8_k(b: np.ndarray) -> np.ndarray:
    return b[:, :4].view("<f4") * b[:, 4:260].view(np.int8)


_IQ4XS_SHIFT_LOW = np.array([0, 4] * 4, dtype=np.uint8)
_IQ4XS_SHIFT_HIGH = np.arange(0, 16, 2, dtype=np.uint16)


def _iq4_xs(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d = _f16(b, 0).reshape(n, 1, 1)
    scales_high = b[:, 2:4].view("<u2")
    low = (b[:, 4:8][:, np.arange(8) // 2] >> _IQ4XS_SHIFT_LOW) & 0x0F
    high = ((scales_high >> _IQ4XS_SHIFT_HIGH) & 3).astype(np.uint8)
    scales = ((low | (high << 4)).astype(np.int8) - np.int8(32)).reshape(n, 8, 1)
    q = _nibbles(b[:, 8:136].reshape(n * 8, 16)).reshape(n, 8, 32)
    return ((d * scales) * _IQ4NL_VALUES[q]).reshape(n, 256)


_BLOCK_DECODERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Q4_0": _q4_0,
    "Q4_1": _q4_1,
    "Q5_0": _q5_0,
    "Q5_1": _q5_1,
    "Q8_0": _q8_0,
    "Q8_1": _q8_1,
    "Q2_K": _q2_k,
    "Q3_K": _q3_k,
    "Q4_K": _q4_k,
    "Q5_K": _q5_k,
    "Q6_K": _q6_k,
    "Q8_K": _q8_k,
    "IQ4_NL": _iq4_nl,
    "IQ4_XS": _iq4_xs,
    "MXFP4": _mxfp4,
}

# Whole-array decoders for the plain element types.
_PLAIN_DTYPES = {
    "F32": "<f4",
    "F16": "<f2",
    "F64": "<f8",
    "I8": "i1",
    "I16": "<i2",
    "I32": "<i4",
    "I64": "<i8",
}


def _plain(raw: np.ndarray, type_name: str) -> np.ndarray:
    if type_name == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    return raw.view(_PLAIN_DTYPES[type_name]).astype(np.float32)


# Types decoded by the gguf package's reference implementation (see the module docstring).
_DELEGATED = {
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ3_XXS",
    "IQ3_S",
    "IQ1_S",
    "IQ1_M",
    "TQ1_0",
    "TQ2_0",
    "NVFP4",
}


def supported_types() -> list[str]:
    """Names of the ggml types :func:`dequantize` accepts."""
    names = set(_BLOCK_DECODERS) | set(_PLAIN_DTYPES) | {"BF16"} | _DELEGATED
    return [name for name, _, _ in GGML_TYPES.values() if name in names]


def dequantize(raw: np.ndarray | bytes, ggml_type: int | str, shape: Sequence[int]) -> np.ndarray:
    """Decode ``raw`` (the tensor's bytes) of ``ggml_type`` with GGML ``shape`` (ne0 first).

    Returns float32 in row-major shape ``tuple(reversed(shape))``.
    """
    number = ggml_type_number(ggml_type)
    type_name, block, block_bytes = GGML_TYPES[number]
    shape = tuple(int(s) for s in shape)
    n_elements = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if shape and shape[0] % block:
        raise ValueError(
            f"row length {shape[0]} is not a multiple of the {type_name} block size {block}"
        )
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = np.frombuffer(raw, dtype=np.uint8)
    raw = raw.reshape(-1).view(np.uint8)
    n_blocks = n_elements // block
    if raw.size != n_blocks * block_bytes:
        raise ValueError(
            f"{type_name} tensor of shape {list(shape)} needs {n_blocks * block_bytes} bytes, got {raw.size}"
        )
    out_shape = tuple(reversed(shape))

    if block == 1 and (type_name in _PLAIN_DTYPES or type_name == "BF16"):
        with np.errstate(over="ignore"):
            return _plain(raw, type_name).reshape(out_shape)
    decoder = _BLOCK_DECODERS.get(type_name)
    if decoder is None:
        with np.errstate(over="ignore", invalid="ignore"):
            return _delegate(raw, number, n_blocks, block_bytes).reshape(out_shape)

    blocks = raw.reshape(n_blocks, block_bytes)
    out = np.empty((n_blocks, block), dtype=np.float32)
    step = max(1, _BLOCKS_PER_SLICE_BYTES // block_bytes)
    # Garbage scales (inf/NaN) in a file give inf/NaN values, as in ggml, not warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n_blocks, step):
            out[start : start + step] = decoder(blocks[start : start + step])
    return out.reshape(out_shape)


def _delegate(raw: np.ndarray, number: int, n_blocks: int, block_bytes: int) -> np.ndarray:
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import QuantError
    from gguf.quants import dequantize as reference_dequantize

    try:
        values = reference_dequantize(
            raw.reshape(n_blocks, block_bytes), GGMLQuantizationType(number)
        )
    except (NotImplementedError, QuantError) as exc:
        raise ValueError(f"cannot dequantize ggml type {GGML_TYPES[number][0]}: {exc}") from None
    return np.asarray(values, dtype=np.float32)
