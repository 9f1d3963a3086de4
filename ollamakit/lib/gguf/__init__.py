"""The GGUF library: a strict memory-mapped reader, an atomic streaming writer, and numpy
dequantization of every ggml tensor type a model may carry.

    from ollamakit.lib.gguf import GGUFFile
    with GGUFFile.open(path) as g:
        g.architecture, g.metadata["llama.block_count"], g.tensor("token_embd.weight")
"""

from typing import TYPE_CHECKING

from ollamakit.lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use
    from .adapter import LoraPair, lora_pairs
    from .constants import ValueType
    from .dequant import dequantize, supported_types
    from .reader import GGUFFile, TensorInfo, looks_like_gguf
    from .writer import GGUFWriter

# Imported on first use: these modules import numpy and gguf, and the entry points load this package.
__getattr__ = lazy_exports(
    __name__,
    {
        "ValueType": ".constants",
        "dequantize": ".dequant",
        "supported_types": ".dequant",
        "GGUFFile": ".reader",
        "TensorInfo": ".reader",
        "looks_like_gguf": ".reader",
        "GGUFWriter": ".writer",
        "lora_pairs": ".adapter",
        "LoraPair": ".adapter",
    },
)

__all__ = [
    "GGUFFile",
    "GGUFWriter",
    "TensorInfo",
    "ValueType",
    "dequantize",
    "looks_like_gguf",
    "lora_pairs",
    "LoraPair",
    "supported_types",
]
