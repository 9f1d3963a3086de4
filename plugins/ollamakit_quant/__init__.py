"""Quantization of F32/F16/BF16 GGUF models to ggml's block types, in numpy.

Fourteen file types are offered as ``ollamakit.quantizer`` drivers (``q4_K_M``, ``q8_0``, ...).
The output matches llama.cpp's ``llama-quantize`` without an importance matrix: the same type for
every tensor (``recipe``) and bit-identical blocks (``legacy`` for the 32-value types, ``kquants``
and ``search`` for the K-quants).

    from ollamakit_quant import quantize_file
    quantize_file("model-f16.gguf", "model-q4_k_m.gguf", "q4_K_M", progress=print)
"""

from .convert import to_float
from .encode import BLOCK_TYPES, encode
from .quantizer import FileTypeQuantizer, file_type_name, plan, quantize_file
from .recipe import FILE_TYPES

__all__ = [
    "BLOCK_TYPES",
    "FILE_TYPES",
    "FileTypeQuantizer",
    "encode",
    "file_type_name",
    "plan",
    "quantize_file",
    "to_float",
]
