"""Writes GGUF (version 3) files atomically, streaming tensor data one tensor at a time.

    with GGUFWriter(path) as w:
        w.add_metadata(src.metadata, src.metadata_types)      # round-trips what the reader returns
        w.add("general.file_type", 7, ValueType.UINT32)
        for t in src.tensors:
            w.add_tensor(t.name, src.raw(t.name), t.ggml_type, t.shape)   # a zero-copy view
        w.add_tensor("extra.weight", lambda: make_array())               # produced when written

The file is built in a temporary file next to ``path`` and renamed into place only when complete,
so readers never see half a model. Tensor data may be given as a callable that is called only
when that tensor is written, so at most one tensor is in memory at a time.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import (
    DEFAULT_ALIGNMENT,
    FLOAT_TYPES,
    GGML_TYPES,
    GGUF_MAGIC,
    INTEGER_RANGES,
    MAX_DIMS,
    SCALAR_DTYPES,
    SCALAR_STRUCTS,
    ValueType,
    ggml_type_number,
)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FLOAT_GGML_TYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}

TensorData = np.ndarray | bytes | bytearray | memoryview
TensorSource = TensorData | Callable[[], TensorData]


def infer_value_type(value: object) -> int:
    """A GGUF type for a Python value (for lists, the element type).

    Scalar ints become UINT32 (what llama.cpp expects of counts, lengths and token ids) and int
    lists INT32 (as token types are), widening to 64 bits when needed. Pass an explicit type for
    anything else.
    """
    if isinstance(value, (list, tuple)):
        leaves = list(_leaves(value))
        if not leaves:
            raise ValueError("cannot infer the element type of an empty array; pass value_type")
        first = leaves[0]
        if isinstance(first, int) and not isinstance(first, bool):
            lo, hi = min(leaves), max(leaves)
            if lo >= -(1 << 31) and hi < (1 << 31):
                return ValueType.INT32
            return ValueType.INT64 if lo < 0 else ValueType.UINT64
        return infer_value_type(first)
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, int):
        if 0 <= value <= 0xFFFFFFFF:
            return ValueType.UINT32
        if -(1 << 31) <= value < 0:
            return ValueType.INT32
        return ValueType.INT64 if value < 0 else ValueType.UINT64
    if isinstance(value, float):
        return ValueType.FLOAT32
    if isinstance(value, str):
        return ValueType.STRING
    raise ValueError(f"no GGUF type for a {type(value).__name__}")


def _leaves(value):
    for item in value:
        if isinstance(item, (list, tuple)):
            yield from _leaves(item)
        else:
            yield item


def _encode_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U64.pack(len(data)) + data


def encode_value(value: object, value_type: int, key: str = "value") -> bytes:
    """The bytes of one metadata value (without its type tag); lists become arrays."""
    if isinstance(value, (list, tuple)):
        return _encode_array(value, value_type, key)
    return _encode_scalar(value, value_type, key)


def _encode_scalar(value: object, value_type: int, key: str) -> bytes:
    if value_type == ValueType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {type(value).__name__}")
        return _encode_string(value)
    if value_type == ValueType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected a bool, got {type(value).__name__}")
        return b"\x01" if value else b"\x00"
    if value_type in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{key}: expected an integer, got {type(value).__name__}")
        lo, hi = INTEGER_RANGES[value_type]
        if not lo <= value <= hi:
            raise ValueError(f"{key}: {value} does not fit {ValueType(value_type).name}")
        return SCALAR_STRUCTS[value_type].pack(int(value))
    if value_type in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"{key}: expected a number, got {type(value).__name__}")
        return SCALAR_STRUCTS[value_type].pack(float(value))
    raise ValueError(f"{key}: unknown value type {value_type}")


def _encode_array(values: Sequence, value_type: int, key: str) -> bytes:
    if values and isinstance(values[0], (list, tuple)):
        inner = [_encode_array(item, value_type, f"{key}[{i}]") for i, item in enumerate(values)]
        return _U32.pack(ValueType.ARRAY) + _U64.pack(len(values)) + b"".join(inner)
    header = _U32.pack(value_type) + _U64.pack(len(values))
    if value_type == ValueType.ARRAY and not values:
        return header  # an empty array of arrays
    if value_type == ValueType.STRING:
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"{key}: expected a list of strings")
        return header + b"".join([_encode_string(v) for v in values])
    if value_type not in SCALAR_DTYPES:
        raise ValueError(f"{key}: unknown element type {value_type}")
    if value_type == ValueType.BOOL:
        if not all(isinstance(v, bool) for v in values):
            raise ValueError(f"{key}: expected a list of bools")
    elif value_type in INTEGER_RANGES and values:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{key}: expected a list of integers")
        lo, hi = INTEGER_RANGES[value_type]
        if not (lo <= min(values) and max(values) <= hi):
            raise ValueError(f"{key}: values do not fit {ValueType(value_type).name}")
    return header + np.asarray(values, dtype=SCALAR_DTYPES[value_type]).tobytes()


@dataclass
class _PendingTensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    nbytes: int
    source: TensorSource


class GGUFWriter:
    """Collects metadata and tensors, then writes the file in one pass on :meth:`write`."""

    def __init__(self, path: str | os.PathLike, *, alignment: int = DEFAULT_ALIGNMENT):
        self.path = Path(path)
        self.alignment = DEFAULT_ALIGNMENT
        self._metadata: dict[str, tuple[object, int]] = {}
        self._tensors: dict[str, _PendingTensor] = {}
        self.written = False
        if alignment != DEFAULT_ALIGNMENT:
            self.add("general.alignment", alignment, ValueType.UINT32)  # readers must be told

    def __enter__(self) -> GGUFWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.written:
            self.write()

    # -- metadata ------------------------------------------------------------------------------

    def add(self, key: str, value: object, value_type: int | None = None) -> None:
        """Set one key; for list values ``value_type`` is the element type. Replaces any old value."""
        if not isinstance(key, str) or not key:
            raise ValueError("metadata keys must be non-empty strings")
        value_type = infer_value_type(value) if value_type is None else int(value_type)
        encode_value(value, value_type, key)  # validate now, so errors point at the caller
        if key == "general.alignment":
            if (
                value_type != ValueType.UINT32
                or not isinstance(value, (int, np.integer))
                or value <= 0
                or value & (value - 1)
            ):
                raise ValueError("general.alignment must be a uint32 power of two")
            self.alignment = int(value)
        self._metadata[key] = (value, value_type)

    def add_metadata(
        self, metadata: Mapping[str, object], types: Mapping[str, int] | None = None
    ) -> None:
        """Add many keys; ``types`` is e.g. a reader's ``metadata_types`` (missing ones are inferred)."""
        for key, value in metadata.items():
            self.add(key, value, (types or {}).get(key))

    def remove(self, key: str) -> None:
        if self._metadata.pop(key, None) is not None and key == "general.alignment":
            self.alignment = DEFAULT_ALIGNMENT

    # -- tensors -------------------------------------------------------------------------------

    def add_tensor(
        self,
        name: str,
        data: TensorSource,
        ggml_type: int | str | None = None,
        shape: Sequence[int] | None = None,
    ) -> None:
        """Add a tensor in file order.

        ``data`` is a float32/float16 array (row-major; type and shape follow from it), or raw
        bytes with ``ggml_type`` and GGML ``shape`` (ne0 first), or a callable returning either,
        called when the tensor is written.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("tensor names must be non-empty strings")
        if name in self._tensors:
            raise ValueError(f"duplicate tensor name '{name}'")
        if callable(data) and (ggml_type is None or shape is None):
            raise ValueError(f"tensor '{name}': a callable source needs ggml_type and shape")
        if ggml_type is None:
            if not isinstance(data, np.ndarray) or data.dtype not in _FLOAT_GGML_TYPES:
                raise ValueError(
                    f"tensor '{name}': pass ggml_type for data that is not float32/float16"
                )
            ggml_type = _FLOAT_GGML_TYPES[data.dtype]
        number = ggml_type_number(ggml_type)
        if shape is None:
            if not isinstance(data, np.ndarray):
                raise ValueError(f"tensor '{name}': pass the shape of raw data")
            shape = tuple(reversed(data.shape)) or (1,)
        shape = tuple(int(s) for s in shape)
        type_name, block, block_bytes = GGML_TYPES[number]
        if not 1 <= len(shape) <= MAX_DIMS or any(s <= 0 for s in shape):
            raise ValueError(f"tensor '{name}': invalid shape {list(shape)}")
        if shape[0] % block:
            raise ValueError(
                f"tensor '{name}': row length {shape[0]} is not a multiple of the {type_name} block size {block}"
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) // block * block_bytes
        self._tensors[name] = _PendingTensor(name, shape, number, nbytes, data)

    # -- output --------------------------------------------------------------------------------

    def _header(self) -> tuple[bytes, list[int]]:
        parts = [
            GGUF_MAGIC,
            _U32.pack(3),
            _U64.pack(len(self._tensors)),
            _U64.pack(len(self._metadata)),
        ]
        for key, (value, value_type) in self._metadata.items():
            tag = ValueType.ARRAY if isinstance(value, (list, tuple)) else value_type
            parts += [_encode_string(key), _U32.pack(tag), encode_value(value, value_type, key)]
        offsets, offset = [], 0
        for t in self._tensors.values():
            offset = _align(offset, self.alignment)
            offsets.append(offset)
            parts += [
                _encode_string(t.name),
                _U32.pack(len(t.shape)),
                struct.pack(f"<{len(t.shape)}Q", *t.shape),
            ]
            parts += [_U32.pack(t.ggml_type), _U64.pack(offset)]
            offset += t.nbytes
        header = b"".join(parts)
        return header + bytes(_align(len(header), self.alignment) - len(header)), offsets

    def write(self) -> Path:
        """Write the file atomically; returns its path."""
        if self.written:
            raise RuntimeError("GGUF file already written")
        header, offsets = self._header()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".gguf", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(header)
                for t, offset in zip(self._tensors.values(), offsets):
                    fh.write(bytes(len(header) + offset - fh.tell()))  # alignment padding
                    fh.write(_tensor_bytes(t))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self.written = True
        return self.path


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _tensor_bytes(t: _PendingTensor) -> memoryview:
    data = t.source() if callable(t.source) else t.source
    if isinstance(data, np.ndarray):
        data = _convert_floats(data, t)
        data = np.ascontiguousarray(data).data.cast("B")
    else:
        data = memoryview(data).cast("B")
    if data.nbytes != t.nbytes:
        raise ValueError(
            f"tensor '{t.name}': {GGML_TYPES[t.ggml_type][0]} {list(t.shape)} needs {t.nbytes} bytes, got {data.nbytes}"
        )
    return data


def _convert_floats(array: np.ndarray, t: _PendingTensor) -> np.ndarray:
    """Float arrays are stored as the tensor's float type; raw data passes through untouched."""
    if array.dtype.kind != "f":
        return array
    target = GGML_TYPES[t.ggml_type][0]
    if target == "F32":
        return array.astype("<f4", copy=False)
    if target == "F16":
        return array.astype("<f2", copy=False)
    if target == "BF16":
        return float32_to_bf16(array.astype(np.float32, copy=False))
    raise ValueError(
        f"tensor '{t.name}': float data cannot be stored as {target} without quantizing it first"
    )


def float32_to_bf16(array: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even), returned as uint16 bits; NaN stays NaN."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    nan = np.isnan(array)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded
