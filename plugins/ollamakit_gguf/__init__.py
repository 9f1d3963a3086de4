"""GGUF support: a strict memory-mapped reader, an atomic streaming writer, and numpy
dequantization of every ggml tensor type a model may carry.

    from ollamakit_gguf import GGUFFile
    with GGUFFile.open(path) as g:
        g.architecture, g.metadata["llama.block_count"], g.tensor("token_embd.weight")
"""

from .constants import ValueType
from .dequant import dequantize, supported_types
from .reader import GGUFFile, TensorInfo, format_parameter_size, looks_like_gguf
from .writer import GGUFWriter

__all__ = [
    "GGUFFile",
    "GGUFWriter",
    "TensorInfo",
    "ValueType",
    "dequantize",
    "format_parameter_size",
    "looks_like_gguf",
    "supported_types",
]
