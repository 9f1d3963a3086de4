"""Safetensors files for tests: valid ones from arrays, and hostile ones with any header."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}


def raw_file(path: Path, header, data: bytes = b"", *, length: int | None = None) -> Path:
    """A file with exactly this header (a dict is JSON-encoded) and data section."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(encoded) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + encoded + data)
    return path


def write_tensors(path: Path, tensors: dict, bf16: tuple[str, ...] = ()) -> Path:
    """A valid file; names in ``bf16`` are stored as bfloat16 (rounded from float32)."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if name in bf16:
            bits = array.astype(np.float32).view(np.uint32)
            data = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
            dtype = "BF16"
        else:
            data, dtype = array.tobytes(), _DTYPES[array.dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    return raw_file(path, header, b"".join(chunks))
