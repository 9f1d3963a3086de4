"""A strict, memory-mapped GGUF reader.

Uploaded blobs reach this parser, so it treats every number in the file as hostile: each count
and length is checked against the bytes that remain before anything is allocated or looped over,
and every problem becomes :class:`ollamakit.errors.InvalidModelFile` (HTTP 400) with a message
that names what is wrong.

Layout (version 2 and 3, little-endian)::

    magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
    kv_count x (string key | u32 value_type | value)
    tensor_count x (string name | u32 n_dims | n_dims x u64 | u32 ggml_type | u64 offset)
    padding to general.alignment | tensor data (offsets relative to here)
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ollamakit.errors import InvalidModelFile

from .constants import (
    DEFAULT_ALIGNMENT,
    GGML_TYPES,
    GGUF_MAGIC,
    INT64_MAX,
    MAX_DIMS,
    SCALAR_DTYPES,
    SCALAR_STRUCTS,
    SUPPORTED_VERSIONS,
    ValueType,
    file_type_name,
)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")
_MIN_KV_BYTES = 8 + 4 + 1  # empty key length, value type, smallest value
_MIN_TENSOR_INFO_BYTES = (
    8 + 1 + 4 + 8 + 4 + 8
)  # name length + 1 byte, n_dims, one dim, type, offset
_MAX_ARRAY_DEPTH = 8  # nested arrays are legal but real files never go deeper than two
# Python objects are many times larger than their packed bytes, and every element costs parse
# time, so the header's contents get caps of their own beyond the file-size bound. Real files
# stay far below each: a few dozen keys, vocabularies of up to 262k tokens with as many scores
# and types, merges under a million, and no arrays of arrays (llama.cpp's loader refuses them).
MAX_ARRAY_LENGTH = 1 << 24  # elements in one array
MAX_METADATA_ELEMENTS = 1 << 25  # elements in all arrays together
MAX_METADATA_STRINGS = 1 << 20  # strings in all arrays together: the slowest kind to read
MAX_NESTED_ARRAYS = 1024  # arrays inside arrays, in the whole header
MAX_METADATA_KEYS = 1 << 14


# ``GGUFFile.read_header``: the first read of a file's start, and the most it reads for a header
# (real headers are a few MB; a 262k-token vocabulary makes one of about ten).
FIRST_HEADER_READ = 1 << 20
MAX_HEADER_READ = 64 << 20


class _NeedMore(Exception):
    """A header parsed from the file's first bytes ran past them (``GGUFFile.read_header``)."""


def invalid(message: str) -> InvalidModelFile:
    return InvalidModelFile(f"invalid GGUF: {message}")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGML order: ne0 (the contiguous row length) first
    ggml_type: int
    offset: int  # absolute offset of the tensor's data in the file
    nbytes: int
    n_elements: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0]


class _Parser:
    """Reads header values from the mapped bytes with a bounds check on every step."""

    def __init__(self, buf, size: int, file_size: int | None = None):
        self.buf = buf
        self.size = size  # of ``buf``
        self.file_size = size if file_size is None else file_size  # ``buf`` may be its start
        self.pos = 0
        self.elements = 0  # array elements read so far, of every kind
        self.strings = 0
        self.nested = 0

    def count(self, n: int, what: str, strings: bool = False) -> None:
        """Charge ``n`` array elements to the header's budget before reading them."""
        self.elements += n
        if self.elements > MAX_METADATA_ELEMENTS:
            raise invalid(
                f"{what} takes the metadata past {MAX_METADATA_ELEMENTS} array elements in all"
            )
        if strings:
            self.strings += n
            if self.strings > MAX_METADATA_STRINGS:
                raise invalid(
                    f"{what} takes the metadata past {MAX_METADATA_STRINGS} strings in arrays"
                )

    def remaining(self) -> int:
        return self.size - self.pos

    def short(self, message: str, end: int) -> Exception:
        """What a read to ``end``, past ``buf``, means: a damaged file, unless ``buf`` is only
        the file's start and the file reaches ``end`` (then more of it is needed)."""
        return (
            _NeedMore()
            if end <= self.file_size and self.size < self.file_size
            else invalid(message)
        )

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.short(
                f"file ends inside {what} (needs {n} bytes at offset {self.pos}, {self.size - self.pos} left)",
                self.pos + n,
            )

    def u32(self, what: str) -> int:
        self.need(4, what)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def u64(self, what: str) -> int:
        self.need(8, what)
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return value

    def string(self, what: str) -> str:
        length = self.u64(f"the length of {what}")
        if length > self.size - self.pos:
            raise self.short(
                f"{what} length {length} runs past the end of the file", self.pos + length
            )
        start = self.pos
        self.pos += length
        try:
            return self.buf[start : self.pos].decode("utf-8")
        except UnicodeDecodeError:
            raise invalid(f"{what} is not valid UTF-8") from None

    def value(self, value_type: int, what: str, depth: int = 0):
        """One value of ``value_type``; returns (value, leaf element type)."""
        fmt = SCALAR_STRUCTS.get(value_type)
        if fmt is not None:
            self.need(fmt.size, what)
            (value,) = fmt.unpack_from(self.buf, self.pos)
            self.pos += fmt.size
            if value_type == ValueType.BOOL:
                value = self._bool(value, what)
            return value, value_type
        if value_type == ValueType.STRING:
            return self.string(what), value_type
        if value_type == ValueType.ARRAY:
            return self.array(what, depth)
        raise invalid(f"{what} has unknown value type {value_type}")

    @staticmethod
    def _bool(value: int, what: str) -> bool:
        if value > 1:
            raise invalid(f"{what} has bool value {value} (must be 0 or 1)")
        return bool(value)

    def array(self, what: str, depth: int):
        if depth >= _MAX_ARRAY_DEPTH:
            raise invalid(f"{what} nests arrays deeper than {_MAX_ARRAY_DEPTH} levels")
        element_type = self.u32(f"the element type of {what}")
        count = self.u64(f"the length of {what}")
        if count > MAX_ARRAY_LENGTH:
            raise invalid(f"{what} has {count} elements, more than the limit of {MAX_ARRAY_LENGTH}")
        dtype = SCALAR_DTYPES.get(element_type)
        if dtype is not None:
            nbytes = count * SCALAR_STRUCTS[element_type].size
            if nbytes > self.remaining():
                raise self.short(
                    f"{what} has {count} elements, more than the file holds", self.pos + nbytes
                )
            self.count(count, what)
            values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            self.pos += nbytes
            if element_type == ValueType.BOOL:
                if count and values.max() > 1:
                    raise invalid(f"{what} holds a bool value other than 0 or 1")
                return values.astype(bool).tolist(), element_type
            return values.tolist(), element_type
        if element_type == ValueType.STRING:
            if count * 8 > self.remaining():
                raise self.short(
                    f"{what} has {count} strings, more than the file holds", self.pos + count * 8
                )
            self.count(count, what, strings=True)
            return self._strings(count, what), element_type
        if element_type == ValueType.ARRAY:
            if count * 12 > self.remaining():
                raise self.short(
                    f"{what} has {count} arrays, more than the file holds", self.pos + count * 12
                )
            self.count(count, what)
            self.nested += count
            if self.nested > MAX_NESTED_ARRAYS:
                raise invalid(
                    f"{what} holds arrays of arrays past the limit of {MAX_NESTED_ARRAYS} in all"
                )
            leaf = ValueType.ARRAY
            items = []
            for i in range(count):
                item, item_leaf = self.array(f"{what}[{i}]", depth + 1)
                if leaf == ValueType.ARRAY:
                    leaf = item_leaf
                items.append(item)
            return items, leaf
        raise invalid(f"{what} has unknown element type {element_type}")

    def _strings(self, count: int, what: str) -> list[str]:
        # The hot loop of the parser (a 262k-token vocabulary): kept free of method calls.
        buf, size, pos = self.buf, self.size, self.pos
        unpack = _U64.unpack_from
        out: list[str] = []
        append = out.append
        try:
            for _ in range(count):
                if pos + 8 > size:
                    raise self.short(f"file ends inside {what}", pos + 8)
                (length,) = unpack(buf, pos)
                pos += 8
                end = pos + length
                if end > size:
                    raise self.short(
                        f"a string in {what} (length {length}) runs past the end of the file", end
                    )
                append(buf[pos:end].decode("utf-8"))
                pos = end
        except UnicodeDecodeError:
            raise invalid(f"string {len(out)} of {what} is not valid UTF-8") from None
        self.pos = pos
        return out


class GGUFFile:
    """An open GGUF file: parsed header plus zero-copy access to tensor data.

    ``metadata`` holds plain Python values (arrays as lists, nested arrays as nested lists).
    ``metadata_types`` holds each key's GGUF value type; for an array key it is the element type
    (the innermost one for nested arrays), since the list itself says "array". Together they let
    :class:`~ollamakit.lib.gguf.writer.GGUFWriter` write the same bytes back.

    Use :meth:`open` (or the class as a context manager) and :meth:`close` when done; arrays
    returned by :meth:`raw` stay valid after close, as they keep the mapping alive themselves.
    """

    def __init__(self, path: str | os.PathLike):
        self.path: Path | None = Path(path)
        self._file: BinaryIO | None = open(self.path, "rb")
        # None once closed (and before the mapping is made, should __init__ fail early)
        self._map: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None
        try:
            self.file_size = os.fstat(self._file.fileno()).st_size
            if self.file_size < _HEADER.size:
                raise invalid(f"file is {self.file_size} bytes, too short for a GGUF header")
            self._map = mapping = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._bytes = np.frombuffer(mapping, dtype=np.uint8)
            self._parse(mapping)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike) -> GGUFFile:
        return cls(path)

    @classmethod
    def read_header(
        cls, file: BinaryIO, size: int, limit: int = MAX_HEADER_READ
    ) -> GGUFFile | None:
        """The header (metadata and tensor infos) of a GGUF file of ``size`` bytes, read from
        ``file`` at its current position, which is the file's start: no more of it is read
        than the header needs, so a blob in a remote store is read by a range, not fetched
        whole. The result holds no tensor data (``raw`` says it is closed). None when the
        header is longer than ``limit`` bytes."""
        if size < _HEADER.size:
            raise invalid(f"file is {size} bytes, too short for a GGUF header")
        buf = bytearray()
        want = min(size, FIRST_HEADER_READ)
        while True:
            while len(buf) < want:
                chunk = file.read(want - len(buf))
                if not chunk:
                    raise invalid(f"file ends at byte {len(buf)}, before its size of {size}")
                buf += chunk
            gguf = cls.__new__(cls)
            gguf.path = gguf._file = gguf._map = gguf._bytes = None
            gguf.file_size = size
            try:
                gguf._parse(buf)
                return gguf
            except _NeedMore:
                if want >= min(size, limit):
                    return None
                want = min(size, limit, want * 4)

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._bytes = None
        mapping, self._map = self._map, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # arrays from raw() still use it; it closes when the last one goes
        if self._file is not None:
            self._file.close()

    # -- parsing -------------------------------------------------------------------------------

    def _parse(self, mapping: mmap.mmap | bytearray) -> None:
        p = _Parser(mapping, len(mapping), self.file_size)
        magic, version, tensor_count, kv_count = _HEADER.unpack_from(mapping, 0)
        if magic != GGUF_MAGIC:
            raise invalid(f"bad magic {magic!r} (expected b'GGUF')")
        if version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if version > 0xFFFF else ""
            raise invalid(f"unsupported version {version}{hint}; versions 2 and 3 are supported")
        self.version = version
        p.pos = _HEADER.size
        left = self.file_size - p.pos
        if tensor_count * _MIN_TENSOR_INFO_BYTES > left:
            raise invalid(f"tensor count {tensor_count} is more than the file can hold")
        if kv_count * _MIN_KV_BYTES > left:
            raise invalid(f"metadata count {kv_count} is more than the file can hold")
        if kv_count > MAX_METADATA_KEYS:
            raise invalid(
                f"metadata count {kv_count} is more than the limit of {MAX_METADATA_KEYS}"
            )

        self.metadata: dict[str, object] = {}
        self.metadata_types: dict[str, int] = {}
        for i in range(kv_count):
            key = p.string(f"metadata key {i}")
            if not key:
                raise invalid(f"metadata key {i} is empty")
            if key in self.metadata:
                raise invalid(f"duplicate metadata key '{key}'")
            value_type = p.u32(f"the value type of '{key}'")
            value, leaf_type = p.value(value_type, f"metadata '{key}'")
            self.metadata[key] = value
            self.metadata_types[key] = leaf_type

        self.alignment = self._alignment()
        infos = [self._tensor_info(p, i) for i in range(tensor_count)]
        self.data_offset = -(-p.pos // self.alignment) * self.alignment
        self.tensors: list[TensorInfo] = self._place(infos)
        self._by_name = {t.name: t for t in self.tensors}

    def _alignment(self) -> int:
        if "general.alignment" not in self.metadata:
            return DEFAULT_ALIGNMENT
        value = self.metadata["general.alignment"]
        if self.metadata_types["general.alignment"] != ValueType.UINT32 or not isinstance(
            value, int
        ):
            raise invalid("general.alignment must be a uint32")
        if value == 0 or value & (value - 1):
            raise invalid(f"general.alignment {value} is not a power of two")
        return value

    def _tensor_info(self, p: _Parser, i: int):
        name = p.string(f"the name of tensor {i}")
        if not name:
            raise invalid(f"tensor {i} has an empty name")
        n_dims = p.u32(f"the dimension count of tensor '{name}'")
        if not 1 <= n_dims <= MAX_DIMS:
            raise invalid(f"tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        p.need(8 * n_dims, f"the shape of tensor '{name}'")
        shape = struct.unpack_from(f"<{n_dims}Q", p.buf, p.pos)
        p.pos += 8 * n_dims
        n_elements = 1
        for dim in shape:
            if dim == 0 or dim > INT64_MAX:
                raise invalid(f"tensor '{name}' has invalid dimension {dim} in shape {list(shape)}")
            n_elements *= dim
        if n_elements > INT64_MAX:
            raise invalid(f"tensor '{name}' shape {list(shape)} overflows the element count")
        ggml_type = p.u32(f"the type of tensor '{name}'")
        if ggml_type not in GGML_TYPES:
            raise invalid(f"tensor '{name}' has unknown type {ggml_type}")
        type_name, block, block_bytes = GGML_TYPES[ggml_type]
        if shape[0] % block:
            raise invalid(
                f"tensor '{name}' row length {shape[0]} is not a multiple of the {type_name} block size {block}"
            )
        offset = p.u64(f"the offset of tensor '{name}'")
        return name, tuple(shape), ggml_type, offset, n_elements // block * block_bytes, n_elements

    def _place(self, infos) -> list[TensorInfo]:
        """Turn relative offsets into absolute ones, checking alignment, bounds and overlap."""
        tensors, names = [], set()
        for name, shape, ggml_type, offset, nbytes, n_elements in infos:
            if name in names:
                raise invalid(f"duplicate tensor name '{name}'")
            names.add(name)
            if offset % self.alignment:
                raise invalid(
                    f"tensor '{name}' offset {offset} is not a multiple of the alignment {self.alignment}"
                )
            start = self.data_offset + offset
            if start + nbytes > self.file_size:
                raise invalid(f"tensor '{name}' data runs past the end of the file")
            tensors.append(TensorInfo(name, shape, ggml_type, start, nbytes, n_elements))
        previous = None
        for t in sorted(tensors, key=lambda t: t.offset):
            if previous is not None and t.offset < previous.offset + previous.nbytes:
                raise invalid(f"tensors '{previous.name}' and '{t.name}' overlap")
            previous = t
        return tensors

    # -- access --------------------------------------------------------------------------------

    def tensor_info(self, name: str) -> TensorInfo:
        return self._by_name[name]

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as a read-only uint8 view of the mapped file (no copy)."""
        info = self._by_name[name]
        if self._bytes is None:
            raise ValueError("GGUF file is closed")
        return self._bytes[info.offset : info.offset + info.nbytes]

    def tensor(self, name: str) -> np.ndarray:
        """The tensor dequantized to float32, in row-major shape (reversed GGML shape)."""
        from .dequant import dequantize

        info = self._by_name[name]
        return dequantize(self.raw(name), info.ggml_type, info.shape)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.metadata.get("general.file_type"))

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    def __repr__(self) -> str:
        name = self.path.name if self.path is not None else "(header)"
        return f"<GGUFFile {name} v{self.version} {self.architecture} {len(self.tensors)} tensors>"


def read_leading_metadata(
    path: str | os.PathLike, stop_prefix: str = "tokenizer."
) -> dict[str, object]:
    """The metadata before the first key starting with ``stop_prefix`` that follows
    ``general.architecture``: the architecture's own values without reading the vocabulary,
    as Ollama's model list reads a file (a fraction of a millisecond against a second for a
    whole header). Checked as strictly as :class:`GGUFFile` checks its header."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < _HEADER.size:
            raise invalid(f"file is {size} bytes, too short for a GGUF header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            magic, version, _, kv_count = _HEADER.unpack_from(mapped, 0)
            if magic != GGUF_MAGIC or version not in SUPPORTED_VERSIONS:
                raise invalid("not a GGUF file of version 2 or 3")
            p = _Parser(mapped, size)
            p.pos = _HEADER.size
            if kv_count * _MIN_KV_BYTES > p.remaining():
                raise invalid(f"metadata count {kv_count} is more than the file can hold")
            metadata: dict[str, object] = {}
            for i in range(kv_count):
                key = p.string(f"metadata key {i}")
                if "general.architecture" in metadata and key.startswith(stop_prefix):
                    break
                metadata[key] = p.value(p.u32(f"the value type of '{key}'"), f"metadata '{key}'")[0]
            return metadata


def looks_like_gguf(path: str | os.PathLike | BinaryIO) -> bool:
    """True if the file starts with the GGUF magic (a cheap sniff, not a validation). An open
    file is read at its current position, and put back there."""
    if not isinstance(path, (str, os.PathLike)):
        start = path.tell()
        try:
            return path.read(len(GGUF_MAGIC)) == GGUF_MAGIC
        finally:
            path.seek(start)
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False
