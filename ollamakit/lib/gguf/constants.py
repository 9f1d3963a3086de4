"""GGUF format constants: value types, tensor (ggml) types and Ollama's file-type names.

The numbers are the GGUF format's own; the ggml type table comes from the ``gguf`` package so it
follows llama.cpp as new types appear.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # ggml tensors have at most four dimensions
INT64_MAX = (1 << 63) - 1


class ValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# Fixed-size value types: struct format (little-endian) and numpy dtype for bulk array reads.
SCALAR_FORMATS: dict[int, str] = {
    ValueType.UINT8: "<B",
    ValueType.INT8: "<b",
    ValueType.UINT16: "<H",
    ValueType.INT16: "<h",
    ValueType.UINT32: "<I",
    ValueType.INT32: "<i",
    ValueType.FLOAT32: "<f",
    ValueType.BOOL: "<B",
    ValueType.UINT64: "<Q",
    ValueType.INT64: "<q",
    ValueType.FLOAT64: "<d",
}
SCALAR_STRUCTS: dict[int, struct.Struct] = {t: struct.Struct(f) for t, f in SCALAR_FORMATS.items()}
SCALAR_DTYPES: dict[int, str] = {
    ValueType.UINT8: "<u1",
    ValueType.INT8: "<i1",
    ValueType.UINT16: "<u2",
    ValueType.INT16: "<i2",
    ValueType.UINT32: "<u4",
    ValueType.INT32: "<i4",
    ValueType.FLOAT32: "<f4",
    ValueType.BOOL: "<u1",
    ValueType.UINT64: "<u8",
    ValueType.INT64: "<i8",
    ValueType.FLOAT64: "<f8",
}

INTEGER_RANGES: dict[int, tuple[int, int]] = {
    ValueType.UINT8: (0, 0xFF),
    ValueType.INT8: (-0x80, 0x7F),
    ValueType.UINT16: (0, 0xFFFF),
    ValueType.INT16: (-0x8000, 0x7FFF),
    ValueType.UINT32: (0, 0xFFFFFFFF),
    ValueType.INT32: (-0x80000000, 0x7FFFFFFF),
    ValueType.UINT64: (0, (1 << 64) - 1),
    ValueType.INT64: (-(1 << 63), INT64_MAX),
}
FLOAT_TYPES = (ValueType.FLOAT32, ValueType.FLOAT64)


# ggml tensor types: number -> (name, elements per block, bytes per block).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    int(t): (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType if t in GGML_QUANT_SIZES
}
# ggml's block_q8_1 holds two float16s and 32 int8s (36 bytes); the gguf package still lists the
# older layout with float32s (40 bytes).
GGML_TYPES[int(GGMLQuantizationType.Q8_1)] = ("Q8_1", 32, 36)
GGML_TYPE_BY_NAME: dict[str, int] = {name: number for number, (name, _, _) in GGML_TYPES.items()}


def ggml_type_name(ggml_type: int) -> str:
    entry = GGML_TYPES.get(ggml_type)
    return entry[0] if entry else f"type {ggml_type}"


def ggml_type_number(ggml_type: int | str) -> int:
    """Accept a ggml type as its number or its name ('Q4_K'); raise ValueError if unknown."""
    if isinstance(ggml_type, str):
        try:
            return GGML_TYPE_BY_NAME[ggml_type.upper()]
        except KeyError:
            raise ValueError(f"unknown ggml type {ggml_type!r}") from None
    if int(ggml_type) not in GGML_TYPES:
        raise ValueError(f"unknown ggml type {ggml_type}")
    return int(ggml_type)


def tensor_nbytes(ggml_type: int, n_elements: int) -> int:
    _, block, size = GGML_TYPES[ggml_type]
    return n_elements // block * size


# general.file_type as Ollama names it; values it does not name read as "unknown". Ollama also
# reads 0 as unknown (it treats zero as absent), but 0 is llama.cpp's all-F32 file type and a
# user importing an F32 model expects to see "F32".
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "MXFP4",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    21: "Q2_K_S",
    32: "BF16",
}
FILE_TYPE_NUMBERS: dict[str, int] = {name: number for number, name in FILE_TYPE_NAMES.items()}


def file_type_name(file_type: object) -> str:
    if isinstance(file_type, bool) or not isinstance(file_type, int):
        return "unknown"
    return FILE_TYPE_NAMES.get(file_type, "unknown")
