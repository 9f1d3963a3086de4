"""A strict reader for safetensors files: a JSON header, then raw little-endian tensor data.

    with SafetensorsFile.open(path) as st:
        for name, info in st.tensors.items(): ...
        array = st.array("model.embed_tokens.weight")   # a read-only view into the mapped file

Nothing here trusts the file: the header length is bounded by the file and by ``MAX_HEADER``,
the JSON must be one object without duplicate keys, every dtype must be known, every shape must
match its byte range, and the byte ranges must tile the data section exactly (no gaps, no
overlaps, nothing left over). The format holds no code, and nothing is ever unpickled. Every
failure is an ``InvalidModelFile`` (a 400).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ollamakit.errors import InvalidModelFile

MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
MAX_DIMS = 8
MAX_NAME = 1024
MAX_METADATA_VALUE = 1 << 20

# dtype name -> (numpy dtype of the stored elements, bytes per element). BF16 has no numpy
# type: its elements are read as uint16 bit patterns (see ``to_float32``).
DTYPES = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U64": (np.dtype("<u8"), 8),
    "U32": (np.dtype("<u4"), 4),
    "U16": (np.dtype("<u2"), 2),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1),
    "F8_E4M3": (np.dtype("u1"), 1),
    "F8_E5M2": (np.dtype("u1"), 1),
}
FLOAT_DTYPES = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets within the data section
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _reject_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidModelFile(f"duplicate key {key!r} in the safetensors header")
        seen[key] = value
    return seen


def parse_header(
    raw: bytes, data_size: int, label: str = "safetensors file"
) -> tuple[dict[str, TensorInfo], dict]:
    """Validate a header's JSON against a data section of ``data_size`` bytes."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{label}: {exc.message}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidModelFile(f"{label}: the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise InvalidModelFile(f"{label}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_METADATA_VALUE
        for k, v in metadata.items()
    ):
        raise InvalidModelFile(f"{label}: __metadata__ must map strings to strings")
    tensors = {name: _tensor_info(name, entry, label) for name, entry in header.items()}
    _check_layout(tensors, data_size, label)
    return tensors, metadata


def _tensor_info(name: str, entry, label: str) -> TensorInfo:
    if not name or len(name) > MAX_NAME:
        raise InvalidModelFile(
            f"{label}: a tensor name is empty or longer than {MAX_NAME} characters"
        )
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise InvalidModelFile(
            f"{label}: tensor {name!r} must have exactly dtype, shape and data_offsets"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    # Each field's type is checked before the field is used: a list or object where a string
    # belongs is unhashable, and would fail the dictionary lookup below with a TypeError.
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InvalidModelFile(f"{label}: tensor {_brief(name)} has unknown dtype {_brief(dtype)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_count(d) for d in shape):
        raise InvalidModelFile(
            f"{label}: tensor {_brief(name)} has an invalid shape {_brief(shape)}"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise InvalidModelFile(
            f"{label}: tensor {_brief(name)} has invalid data_offsets {_brief(offsets)}"
        )
    begin, end = offsets
    if begin > end:
        raise InvalidModelFile(f"{label}: tensor {name!r} ends before it begins")
    expected = math.prod(shape) * DTYPES[dtype][1]
    if end - begin != expected:
        raise InvalidModelFile(
            f"{label}: tensor {name!r} of shape {shape} and dtype {dtype} needs {expected} bytes, its range holds {end - begin}"
        )
    return TensorInfo(name, dtype, tuple(shape), begin, end)


def _brief(value, limit: int = 80) -> str:
    """A bounded repr for messages: a hostile header may put megabytes in one field."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < (1 << 62)


def _check_layout(tensors: dict[str, TensorInfo], data_size: int, label: str) -> None:
    """The byte ranges, in order, must tile the data section exactly."""
    position = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin != position:
            problem = (
                "overlaps another tensor" if info.begin < position else "leaves a gap before it"
            )
            raise InvalidModelFile(f"{label}: tensor {info.name!r} {problem}")
        position = info.end
    if position != data_size:
        raise InvalidModelFile(
            f"{label}: the tensors cover {position} bytes of a {data_size}-byte data section"
        )


class SafetensorsFile:
    """An open, validated safetensors file; tensor arrays are views into its memory map."""

    def __init__(
        self,
        path: Path,
        tensors: dict[str, TensorInfo],
        metadata: dict,
        data_start: int,
        label: str,
    ):
        self.path = path
        self.tensors = tensors
        self.metadata = metadata
        self.label = label
        self._data_start = data_start
        self._file = None
        self._map = None

    @classmethod
    def open(cls, path: str | os.PathLike, label: str | None = None) -> SafetensorsFile:
        path = Path(path)
        label = label or path.name
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise InvalidModelFile(f"{label}: too short to be a safetensors file")
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size < 2 or header_size > MAX_HEADER or header_size > size - 8:
                raise InvalidModelFile(
                    f"{label}: header length {header_size} does not fit a {size}-byte file"
                )
            raw = fh.read(header_size)
        if not raw.lstrip(b" ").startswith(b"{"):
            raise InvalidModelFile(f"{label}: the header is not a JSON object")
        tensors, metadata = parse_header(raw, size - 8 - header_size, label)
        return cls(path, tensors, metadata, 8 + header_size, label)

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # arrays still view it: the mapping lives on until they go
                pass
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _mapped(self):
        if self._map is None:
            self._file = open(self.path, "rb")
            if os.fstat(self._file.fileno()).st_size == 0:
                raise InvalidModelFile(f"{self.label}: empty file")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def raw(self, name: str) -> np.ndarray:
        """The stored elements of ``name`` in their own dtype (BF16 as uint16 bits), read-only."""
        info = self.tensors.get(name)
        if info is None:
            raise InvalidModelFile(f"{self.label}: no tensor named {name!r}")
        dtype = DTYPES[info.dtype][0]
        if info.size == 0:
            return np.zeros(info.shape, dtype=dtype)
        buffer = self._mapped()
        return np.frombuffer(
            buffer, dtype=dtype, count=info.size, offset=self._data_start + info.begin
        ).reshape(info.shape)

    def array(self, name: str) -> np.ndarray:
        """``name`` as float32 (only float tensors convert)."""
        return to_float32(
            self.raw(name), self.tensors[name].dtype, f"{self.label}: tensor {name!r}"
        )


def to_float32(array: np.ndarray, dtype: str, label: str = "tensor") -> np.ndarray:
    if dtype == "F32":
        return array
    if dtype == "F16" or dtype == "F64":
        return array.astype(np.float32)
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    raise InvalidModelFile(
        f"{label} has dtype {dtype}, which is not a float type this converter reads"
    )
