"""Rewrite a GGUF with float tensors: dequantize every matrix to F16/BF16/F32.

Useful on its own (an F16 copy of a quantized model is what the quantizers take as input), and
the tests and benchmark build their F16 sources with it. One tensor is in memory at a time.
"""

from __future__ import annotations

from pathlib import Path

from ollamakit.lib.gguf import GGUFFile, GGUFWriter
from ollamakit.lib.gguf.constants import FILE_TYPE_NUMBERS, ValueType

FLOAT_TYPES = ("F32", "F16", "BF16")


def to_float(source: str | Path, destination: str | Path, float_type: str = "F16") -> Path:
    """Write ``source`` with its multi-dimensional tensors as ``float_type`` and vectors as F32
    (as converters write norms and biases); ``general.file_type`` follows."""
    float_type = float_type.upper()
    if float_type not in FLOAT_TYPES:
        raise ValueError(f"float_type must be one of {', '.join(FLOAT_TYPES)}")
    with GGUFFile.open(source) as src:
        writer = GGUFWriter(destination)
        writer.add_metadata(src.metadata, src.metadata_types)
        writer.add("general.file_type", FILE_TYPE_NUMBERS[float_type], ValueType.UINT32)
        for info in src.tensors:
            matrix = sum(1 for dim in info.shape if dim > 1) > 1
            writer.add_tensor(
                info.name,
                lambda name=info.name: src.tensor(name),
                float_type if matrix else "F32",
                info.shape,
            )
        return writer.write()
