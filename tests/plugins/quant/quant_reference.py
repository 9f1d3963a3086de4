"""llama.cpp's own quantizers, reached through llama-cpp-python's shared libraries when installed.

Used only as an oracle in tests and the benchmark: ``reference_blocks`` runs ggml's
``quantize_row_*_ref`` on an array, ``reference_file`` runs ``llama_model_quantize`` on a file.
Both return None when llama-cpp-python is not importable. ``smollm2_f16`` makes (once) the F16
source the real-model tests and the benchmark quantize.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import numpy as np

# ggml type -> (values per block, bytes per block)
BLOCKS = {
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q2_K": (256, 84),
    "Q3_K": (256, 110),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
}
# llama.cpp's llama_ftype numbers
FTYPES = {
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "Q8_0": 7,
}


@cache
def _llama_cpp():
    try:
        import llama_cpp
    except (ImportError, OSError):
        return None
    llama_cpp.llama_backend_init()
    return llama_cpp


@cache
def _ggml_base():
    llama_cpp = _llama_cpp()
    if llama_cpp is None:
        return None
    found = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-base.*"))
    return ctypes.CDLL(str(found[0])) if found else None


def available() -> bool:
    return _ggml_base() is not None


def reference_blocks(type_name: str, x: np.ndarray) -> np.ndarray | None:
    """ggml's reference encoding of float32 ``x`` (whole blocks) as ``(blocks, bytes)`` uint8."""
    lib = _ggml_base()
    if lib is None:
        return None
    block, nbytes = BLOCKS[type_name]
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.zeros(x.size // block * nbytes, dtype=np.uint8)
    function = getattr(lib, f"quantize_row_{type_name[:-1].lower() + type_name[-1]}_ref")  # q4_K
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    function.restype = None
    function(x.ctypes.data, out.ctypes.data, x.size)
    return out.reshape(-1, nbytes)


def reference_file(
    source: Path, destination: Path, file_type: str, threads: int = 1
) -> Path | None:
    """llama.cpp's ``llama_model_quantize`` of ``source`` to ``file_type`` (no importance matrix)."""
    llama_cpp = _llama_cpp()
    if llama_cpp is None:
        return None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[file_type.upper()]
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(destination).encode(), params) != 0:
        raise RuntimeError(f"llama_model_quantize failed for {file_type}")
    return destination


def smollm2_f16() -> Path:
    """SmolLM2-135M-Instruct as an F16 GGUF (its Q4_1 tensors dequantized), cached beside the
    other test models."""
    from ollamakit.testing.models import CACHE, smollm2_q4_1
    from ollamakit_quant.convert import to_float

    target = CACHE / "models" / "SmolLM2-135M-Instruct.F16.gguf"
    if not target.exists():
        to_float(smollm2_q4_1(), target, "F16")
    return target
