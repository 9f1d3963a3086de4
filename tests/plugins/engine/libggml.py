"""ctypes bindings to a few kernels of llama-cpp-python's libggml-cpu, when it is installed.

Development-time proof that ``ggml_kernels`` gives ggml's bits: tests compare against these when
the library is present and against values recorded from it otherwise.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np

F32 = np.float32
_P = ctypes.c_void_p


@lru_cache(maxsize=1)
def library():
    """libggml-cpu from llama-cpp-python, or None."""
    try:
        import llama_cpp
    except ImportError:
        return None
    path = Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"
    if not path.exists():
        return None
    lib = ctypes.CDLL(str(path))
    lib.ggml_cpu_init()
    for name in ("quantize_row_q8_0", "quantize_row_q8_1"):
        getattr(lib, name).argtypes = [_P, _P, ctypes.c_int64]
    for name in (
        "ggml_vec_dot_q4_1_q8_1",
        "ggml_vec_dot_q8_0_q8_0",
        "ggml_vec_dot_q5_0_q8_0",
        "ggml_vec_dot_f16",
    ):
        getattr(lib, name).argtypes = [
            ctypes.c_int,
            _P,
            ctypes.c_size_t,
            _P,
            ctypes.c_size_t,
            _P,
            ctypes.c_size_t,
            ctypes.c_int,
        ]
    lib.quantize_row_q8_K.argtypes = [_P, _P, ctypes.c_int64]
    lib.ggml_quantize_mat_q8_K_4x8.argtypes = [_P, _P, ctypes.c_int64]
    lib.ggml_vec_dot_q6_K_q8_K.argtypes = lib.ggml_vec_dot_f16.argtypes
    for name in ("ggml_gemv_q4_K_8x8_q8_K", "ggml_gemm_q4_K_8x8_q8_K"):
        getattr(lib, name).argtypes = [ctypes.c_int, _P, ctypes.c_size_t, _P, _P, ctypes.c_int, ctypes.c_int]
    lib.ggml_vec_silu_f32.argtypes = [ctypes.c_int, _P, _P]
    lib.ggml_vec_soft_max_f32.argtypes = [ctypes.c_int, _P, _P, ctypes.c_float]
    lib.ggml_vec_soft_max_f32.restype = ctypes.c_double
    return lib


def _ptr(array):
    return array.ctypes.data_as(_P)


def quantized_dot(
    weight_blocks: np.ndarray, type_name: str, x: np.ndarray
) -> np.ndarray:
    """ggml's vec_dot of every weight row (raw blocks, (out, bytes)) with the float row x."""
    lib = library()
    partner = "q8_1" if type_name == "Q4_1" else "q8_0"
    block = 36 if partner == "q8_1" else 34
    quantized = np.zeros(x.size // 32 * block, np.uint8)
    x = np.ascontiguousarray(x, F32)
    getattr(lib, f"quantize_row_{partner}")(_ptr(x), _ptr(quantized), x.size)
    dot = getattr(lib, f"ggml_vec_dot_{type_name.lower()}_{partner}")
    out = np.zeros(weight_blocks.shape[0], F32)
    result = np.zeros(1, F32)
    for row in range(weight_blocks.shape[0]):
        data = np.ascontiguousarray(weight_blocks[row])
        dot(x.size, _ptr(result), 0, _ptr(data), 0, _ptr(quantized), 0, 1)
        out[row] = result[0]
    return out


def dot_f16(a: np.ndarray, b: np.ndarray) -> float:
    a16 = np.ascontiguousarray(a, np.float16)
    b16 = np.ascontiguousarray(b, np.float16)
    result = np.zeros(1, F32)
    library().ggml_vec_dot_f16(a16.size, _ptr(result), 0, _ptr(a16), 0, _ptr(b16), 0, 1)
    return result[0]


def silu(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, F32)
    y = np.zeros_like(x)
    library().ggml_vec_silu_f32(x.size, _ptr(y), _ptr(x))
    return y


def soft_max_exp(x: np.ndarray, top: float) -> tuple[np.ndarray, float]:
    """The exponentials ``ggml_vec_soft_max_f32`` writes, and the double sum it returns."""
    x = np.ascontiguousarray(x, F32)
    y = np.zeros_like(x)
    total = library().ggml_vec_soft_max_f32(x.size, _ptr(y), _ptr(x), F32(top))
    return y, total


# -- k-quants -------------------------------------------------------------------------------------

Q8_K_BYTES = 4 + 256 + 2 * 16  # float d, int8 qs[256], int16 bsums[16]


def quantize_q8_k(x: np.ndarray) -> np.ndarray:
    """``quantize_row_q8_K`` of each row of x: raw blocks (rows, blocks * 292)."""
    x = np.ascontiguousarray(x, F32)
    rows, width = x.shape
    out = np.zeros((rows, width // 256 * Q8_K_BYTES), np.uint8)
    for row in range(rows):
        library().quantize_row_q8_K(_ptr(x[row]), _ptr(out[row]), width)
    return out


def parse_q8_k(raw: np.ndarray):
    """Raw Q8_K blocks (rows, bytes) as (integers, scales, 16-sums)."""
    blocks = raw.reshape(raw.shape[0], -1, Q8_K_BYTES)
    d = blocks[..., :4].copy().view(F32)[..., 0]
    q = blocks[..., 4:260].copy().view(np.int8)
    sums = blocks[..., 260:].copy().view(np.int16)
    return q, d, sums


def dot_q6_k(weight_blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``ggml_vec_dot_q6_K_q8_K`` of every weight row (raw blocks, (out, bytes)) with row x."""
    quantized = quantize_q8_k(x[None])[0]
    out = np.zeros(weight_blocks.shape[0], F32)
    result = np.zeros(1, F32)
    for row in range(weight_blocks.shape[0]):
        data = np.ascontiguousarray(weight_blocks[row])
        library().ggml_vec_dot_q6_K_q8_K(x.size, _ptr(result), 0, _ptr(data), 0, _ptr(quantized), 0, 1)
        out[row] = result[0]
    return out


class _Tensor(ctypes.Structure):
    """The leading fields of ``struct ggml_tensor``, as far as ``data``."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", _P),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", _P * 10),
        ("view_src", _P),
        ("view_offs", ctypes.c_size_t),
        ("data", _P),
        ("name", ctypes.c_char * 64),
    ]


GGML_TYPE_Q4_K = 12
_REPACK_Q4_K_8X8 = "_ZN4ggml3cpu6repack6repackI10block_q4_KLl8ELl8EEEiP11ggml_tensorPKvm"


def repack_q4_k(weight_blocks: np.ndarray, width: int) -> np.ndarray:
    """Q4_K rows (out, bytes) repacked by ggml's own ``repack<block_q4_K, 8, 8>``."""
    out = weight_blocks.shape[0]
    source = np.ascontiguousarray(weight_blocks).reshape(-1)
    packed = np.zeros_like(source)
    tensor = _Tensor(type=GGML_TYPE_Q4_K)
    tensor.ne[:] = (width, out, 1, 1)
    tensor.data = packed.ctypes.data
    repack = getattr(library(), _REPACK_Q4_K_8X8)
    repack.argtypes = [ctypes.POINTER(_Tensor), _P, ctypes.c_size_t]
    repack.restype = ctypes.c_int
    assert repack(ctypes.byref(tensor), _ptr(source), source.size) == 0
    return packed


def gemv_q4_k(weight_blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What llama.cpp computes for one activation row against a repacked Q4_K matrix."""
    out, width = weight_blocks.shape[0], x.size
    packed = repack_q4_k(weight_blocks, width)
    quantized = quantize_q8_k(x[None])[0]
    result = np.zeros(out, F32)
    library().ggml_gemv_q4_K_8x8_q8_K(width, _ptr(result), out, _ptr(packed), _ptr(quantized), 1, out)
    return result


def gemm_q4_k(weight_blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The same for 4 rows at once: ``ggml_quantize_mat_q8_K_4x8`` then the gemm."""
    out, (rows, width) = weight_blocks.shape[0], x.shape
    assert rows == 4
    packed = repack_q4_k(weight_blocks, width)
    x = np.ascontiguousarray(x, F32)
    quantized = np.zeros(4 * width // 256 * Q8_K_BYTES, np.uint8)
    library().ggml_quantize_mat_q8_K_4x8(_ptr(x), _ptr(quantized), width)
    result = np.zeros((4, out), F32)
    library().ggml_gemm_q4_K_8x8_q8_K(width, _ptr(result), out, _ptr(packed), _ptr(quantized), 4, out)
    return result


# -- a whole ggml matrix product (ggml_mul_mat through a one-node graph) -------------------------

GGML_TYPE_Q6_K = 14


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", _P), ("no_alloc", ctypes.c_bool)]


@lru_cache(maxsize=1)
def _base():
    import llama_cpp

    base = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    base.ggml_init.argtypes = [_InitParams]
    base.ggml_init.restype = _P
    base.ggml_free.argtypes = [_P]
    base.ggml_new_tensor_2d.argtypes = [_P, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    base.ggml_new_tensor_2d.restype = ctypes.POINTER(_Tensor)
    base.ggml_mul_mat.argtypes = [_P, ctypes.POINTER(_Tensor), ctypes.POINTER(_Tensor)]
    base.ggml_mul_mat.restype = ctypes.POINTER(_Tensor)
    base.ggml_new_graph.argtypes = [_P]
    base.ggml_new_graph.restype = _P
    base.ggml_build_forward_expand.argtypes = [_P, ctypes.POINTER(_Tensor)]
    library().ggml_graph_compute_with_ctx.argtypes = [_P, _P, ctypes.c_int]
    return base


def mul_mat(weight_blocks: np.ndarray, type_id: int, width: int, x: np.ndarray) -> np.ndarray:
    """``ggml_mul_mat`` of a weight (raw blocks, (out, bytes)) and float rows x, computed by the
    CPU backend on one thread with whatever kernel it picks for that many rows."""
    base = _base()
    out, (rows, _) = weight_blocks.shape[0], x.shape
    size = weight_blocks.nbytes + x.nbytes * 3 + out * rows * 4 + (4 << 20)
    ctx = base.ggml_init(_InitParams(size, None, False))
    try:
        weight = base.ggml_new_tensor_2d(ctx, type_id, width, out)
        activations = base.ggml_new_tensor_2d(ctx, 0, width, rows)  # F32
        ctypes.memmove(weight.contents.data, _ptr(np.ascontiguousarray(weight_blocks)), weight_blocks.nbytes)
        x = np.ascontiguousarray(x, F32)
        ctypes.memmove(activations.contents.data, _ptr(x), x.nbytes)
        product = base.ggml_mul_mat(ctx, weight, activations)
        graph = base.ggml_new_graph(ctx)
        base.ggml_build_forward_expand(graph, product)
        library().ggml_graph_compute_with_ctx(ctx, graph, 1)
        result = np.zeros((rows, out), F32)
        ctypes.memmove(_ptr(result), product.contents.data, result.nbytes)
        return result
    finally:
        base.ggml_free(ctx)
