"""ctypes bindings to the part of ggml's C API the engine uses.

The libraries come from the ``libggml-python`` wheel (ggml's own CPU backend, prebuilt): the
quantized products, flash attention, rope and norms of llama.cpp, with ggml's thread pool.
Only the functions declared here are bound; each takes and returns plain pointers (Python ints),
so a call costs a few hundred nanoseconds and a whole transformer step is built in well under a
millisecond.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from _ctypes import CFuncPtr  # the base of ctypes' function pointers (LOG_CALLBACK's)

P = ctypes.c_void_p
I32, I64, U64, F32 = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float
SIZE, BOOL, INT = ctypes.c_size_t, ctypes.c_bool, ctypes.c_int

MAX_DIMS = 4
MAX_NAME = 64
MAX_SRC = 10
MAX_OP_PARAMS = 64
MAX_THREADS = 512

# enum ggml_type (ggml.h): the types the engine names itself.
TYPE_F32, TYPE_F16, TYPE_Q8_0, TYPE_I32, TYPE_I64 = 0, 1, 8, 26, 27
TYPE_Q4_0, TYPE_Q4_1, TYPE_Q5_0, TYPE_Q5_1, TYPE_Q8_1 = 2, 3, 6, 7, 9
TYPE_Q2_K, TYPE_Q4_K, TYPE_Q6_K, TYPE_Q8_K, TYPE_IQ4_NL, TYPE_MXFP4 = 10, 12, 14, 15, 20, 39
N_TASKS_MAX = -1  # a custom operation run by every thread of the pool
ROPE_NORMAL, ROPE_NEOX = 0, 2
PREC_F32 = 10


class Tensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h); read for shapes and strides, written only for names."""

    _fields_ = [
        ("type", INT),
        ("buffer", P),
        ("ne", I64 * MAX_DIMS),
        ("nb", SIZE * MAX_DIMS),
        ("op", INT),
        ("op_params", I32 * (MAX_OP_PARAMS // 4)),
        ("flags", I32),
        ("src", P * MAX_SRC),
        ("view_src", P),
        ("view_offs", SIZE),
        ("data", P),
        ("name", ctypes.c_char * MAX_NAME),
        ("extra", P),
        ("padding", ctypes.c_char * 8),
    ]


class InitParams(ctypes.Structure):
    _fields_ = [("mem_size", SIZE), ("mem_buffer", P), ("no_alloc", BOOL)]


class ThreadpoolParams(ctypes.Structure):
    _fields_ = [
        ("cpumask", BOOL * MAX_THREADS),
        ("n_threads", INT),
        ("prio", INT),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", BOOL),
        ("paused", BOOL),
    ]


ABORT_CALLBACK = ctypes.CFUNCTYPE(BOOL, P)


class Cplan(ctypes.Structure):
    """``struct ggml_cplan`` (ggml-cpu.h): how one graph runs on the CPU, and its work buffer."""

    _fields_ = [
        ("work_size", SIZE),
        ("work_data", P),
        ("n_threads", INT),
        ("threadpool", P),
        ("abort_callback", ABORT_CALLBACK),
        ("abort_callback_data", P),
        ("use_ref", BOOL),
    ]


LOG_CALLBACK = ctypes.CFUNCTYPE(None, INT, ctypes.c_char_p, P)
LOG_LEVEL_WARN = 3

# name: (restype, argtypes)
_SIGNATURES = {
    # contexts and tensors
    "ggml_init": (P, [InitParams]),
    "ggml_free": (None, [P]),
    "ggml_tensor_overhead": (SIZE, []),
    "ggml_graph_overhead_custom": (SIZE, [SIZE, BOOL]),
    "ggml_new_tensor": (P, [P, INT, INT, ctypes.POINTER(I64)]),
    "ggml_new_tensor_1d": (P, [P, INT, I64]),
    "ggml_new_tensor_2d": (P, [P, INT, I64, I64]),
    "ggml_new_tensor_3d": (P, [P, INT, I64, I64, I64]),
    "ggml_set_name": (P, [P, ctypes.c_char_p]),
    "ggml_set_input": (None, [P]),
    "ggml_set_output": (None, [P]),
    "ggml_nbytes": (SIZE, [P]),
    "ggml_row_size": (SIZE, [INT, I64]),
    "ggml_type_size": (SIZE, [INT]),
    "ggml_blck_size": (I64, [INT]),
    "ggml_type_name": (ctypes.c_char_p, [INT]),
    "ggml_quantize_chunk": (SIZE, [INT, P, P, I64, I64, I64, P]),
    "ggml_new_graph_custom": (P, [P, SIZE, BOOL]),
    "ggml_build_forward_expand": (None, [P, P]),
    # operations
    "ggml_get_rows": (P, [P, P, P]),
    "ggml_mul_mat": (P, [P, P, P]),
    "ggml_mul_mat_set_prec": (None, [P, INT]),
    "ggml_add": (P, [P, P, P]),
    "ggml_mul": (P, [P, P, P]),
    "ggml_scale": (P, [P, P, F32]),
    "ggml_tanh": (P, [P, P]),
    "ggml_rms_norm": (P, [P, P, F32]),
    "ggml_swiglu_split": (P, [P, P, P]),
    "ggml_geglu_split": (P, [P, P, P]),
    "ggml_reshape_2d": (P, [P, P, I64, I64]),
    "ggml_reshape_3d": (P, [P, P, I64, I64, I64]),
    "ggml_reshape_4d": (P, [P, P, I64, I64, I64, I64]),
    "ggml_view_1d": (P, [P, P, I64, SIZE]),
    "ggml_view_2d": (P, [P, P, I64, I64, SIZE, SIZE]),
    "ggml_view_3d": (P, [P, P, I64, I64, I64, SIZE, SIZE, SIZE]),
    "ggml_permute": (P, [P, P, INT, INT, INT, INT]),
    "ggml_cont": (P, [P, P]),
    "ggml_cast": (P, [P, P, INT]),
    "ggml_cpy": (P, [P, P, P]),
    "ggml_set_rows": (P, [P, P, P, P]),
    "ggml_concat": (P, [P, P, P, INT]),
    "ggml_rope_ext": (P, [P, P, P, P, INT, INT, INT, F32, F32, F32, F32, F32, F32]),
    "ggml_flash_attn_ext": (P, [P, P, P, P, P, F32, F32, F32]),
    "ggml_flash_attn_ext_set_prec": (None, [P, INT]),
    # vision towers: layer norm, GELU, transposes and the average pool of gemma3's projector
    "ggml_norm": (P, [P, P, F32]),
    "ggml_gelu": (P, [P, P]),
    "ggml_gelu_quick": (P, [P, P]),
    # BERT encoders: exact (erf) GELU, and softmax with a mask for attention by products
    "ggml_gelu_erf": (P, [P, P]),
    "ggml_soft_max_ext": (P, [P, P, P, F32, F32]),
    "ggml_transpose": (P, [P, P]),
    "ggml_pool_2d": (P, [P, P, INT, INT, INT, INT, INT, F32, F32]),
    # other architectures: plain GELU/SiLU FFNs, fused gate and up rows, and the mixture of
    # experts' router (softmax or sigmoid, top-k, renormalised weights) and expert products
    "ggml_silu": (P, [P, P]),
    "ggml_swiglu": (P, [P, P]),
    "ggml_geglu": (P, [P, P]),
    "ggml_soft_max": (P, [P, P]),
    "ggml_sigmoid": (P, [P, P]),
    "ggml_argsort_top_k": (P, [P, P, INT]),
    "ggml_sum_rows": (P, [P, P]),
    "ggml_div": (P, [P, P, P]),
    "ggml_clamp": (P, [P, P, F32, F32]),
    "ggml_mul_mat_id": (P, [P, P, P, P]),
    # gpt-oss: biases per chosen expert, its clamped SwiGLU, attention sinks
    "ggml_add_id": (P, [P, P, P, P]),
    "ggml_swiglu_oai": (P, [P, P, P, F32, F32]),
    "ggml_flash_attn_ext_add_sinks": (None, [P, P]),
    # deepseek-v3's expert groups: the groups not chosen filled with -inf
    "ggml_fill": (P, [P, P, F32]),
    # ollamakit's own kernels (kernels.c), run by ggml's threads as custom operations
    "ggml_custom_4d": (P, [P, INT, I64, I64, I64, I64, ctypes.POINTER(P), INT, P, INT, P]),
    # backends, buffers and the graph allocator
    "ggml_backend_cpu_buffer_type": (P, []),
    "ggml_backend_cpu_buffer_from_ptr": (P, [P, SIZE]),
    "ggml_backend_alloc_ctx_tensors_from_buft": (P, [P, P]),
    "ggml_backend_buffer_free": (None, [P]),
    "ggml_backend_buffer_get_size": (SIZE, [P]),
    "ggml_backend_buffer_get_base": (P, [P]),
    "ggml_backend_buffer_clear": (None, [P, ctypes.c_uint8]),
    "ggml_backend_tensor_alloc": (INT, [P, P, P]),
    "ggml_backend_tensor_set": (None, [P, P, SIZE, SIZE]),
    "ggml_backend_tensor_get": (None, [P, P, SIZE, SIZE]),
    "ggml_gallocr_new": (P, [P]),
    "ggml_gallocr_free": (None, [P]),
    "ggml_gallocr_alloc_graph": (BOOL, [P, P]),
    "ggml_gallocr_get_buffer_size": (SIZE, [P, INT]),
    "ggml_graph_plan": (Cplan, [P, INT, P]),
    "ggml_graph_compute": (INT, [P, ctypes.POINTER(Cplan)]),
    "ggml_threadpool_params_default": (ThreadpoolParams, [INT]),
    "ggml_threadpool_new": (P, [ctypes.POINTER(ThreadpoolParams)]),
    "ggml_threadpool_free": (None, [P]),
    "ggml_cpu_init": (None, []),
    "ggml_log_set": (None, [LOG_CALLBACK, P]),
    "ggml_cpu_has_avx2": (INT, []),
    "ggml_cpu_has_avx512": (INT, []),
    "ggml_cpu_has_neon": (INT, []),
    # C++ linkage: the CPU backend's repacking buffer type (weights interleaved for its gemv/gemm)
    "_Z35ggml_backend_cpu_repack_buffer_typev": (P, []),
    # type traits: dequantizing a row into floats
    "ggml_get_type_traits": (P, [INT]),
}

# Newer than some builds: bound when present, None otherwise.
_OPTIONAL = {
    # marks a product whose first operand is a Walsh-Hadamard matrix, which ggml then computes
    # as a fast transform
    "ggml_mul_mat_set_hint": (None, [P, INT]),
}
HINT_SRC0_IS_HADAMARD = 1


class Library:
    """The bound functions, as attributes (``lib.ggml_mul_mat(ctx, a, b)``)."""

    # Bound in __init__ like every function of _SIGNATURES; declared for the calls made here.
    ggml_cpu_init: Callable[[], None]
    ggml_log_set: Callable[[CFuncPtr, int | None], None]
    ggml_type_name: Callable[[int], bytes]

    def __init__(self, folder: Path, origin: str):
        self.folder = folder
        self.origin = origin
        handles = []
        # base first, then the CPU backend and the registry that link against it; global so
        # each resolves the others' symbols
        for name in ("libggml-base.so", "libggml-cpu.so", "libggml.so"):
            handles.append(ctypes.CDLL(str(folder / name), mode=ctypes.RTLD_GLOBAL))
        for name, (restype, argtypes) in _SIGNATURES.items():
            for handle in handles:
                function = getattr(handle, name, None)
                if function is not None:
                    function.restype = restype
                    function.argtypes = argtypes
                    setattr(self, name, function)
                    break
            else:
                raise OSError(f"ggml library in {folder} lacks {name}")
        for name, (restype, argtypes) in _OPTIONAL.items():
            function = next((getattr(h, name) for h in handles if hasattr(h, name)), None)
            if function is not None:
                function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)
        self.ggml_cpu_init()
        self.kernels = Kernels.load(folder, self)
        # ggml prints its progress (each tensor it repacks...) to stderr; only warnings and
        # errors go on, to Python's log
        self._log = LOG_CALLBACK(_log_line)
        self.ggml_log_set(self._log, None)

    def repack_buffer_type(self) -> int:
        """The CPU backend's buffer type that stores weights interleaved, rows 8 at a time, for
        its gemv and gemm kernels (as llama.cpp loads them); tensors are repacked as set."""
        return getattr(self, "_Z35ggml_backend_cpu_repack_buffer_typev")()

    def features(self) -> list[str]:
        """The instruction sets this build of the CPU backend uses."""
        return [
            name for name in ("avx2", "avx512", "neon") if getattr(self, f"ggml_cpu_has_{name}")()
        ]


Q0_MOST_ROWS = 8  # the widest step the Q8_0 and Q5_0 kernels take (measured: performance.md)
Q4_K_MOST_ROWS = 8  # the widest step the repacked Q4_K kernel takes (measured: performance.md)


class Product(NamedTuple):
    """One of ollamakit's kernels: the weight times the activations rounded to ``activations``
    (the type ggml's own product rounds them to), for steps of ``fewest_rows`` to ``most_rows``
    rows (None: any); a ``repacked`` kernel reads the weight as the CPU backend's repacking
    buffer stores it (``Library.repack_buffer_type``), any other the file's own blocks."""

    activations: int
    function: int
    most_rows: int | None
    repacked: bool = False
    # Most kernels pay only where a block read serves several rows; a single row (one decoding
    # sequence) stays ggml's unless the kernel is faster there too.
    fewest_rows: int = 2

    def multiply(self, step, weight: int, x: int) -> int:
        """``weight`` times ``x`` (float32, contiguous) in ``step``'s graph: ``x`` rounded by ggml
        (a ``cast`` node, as its own product rounds it), then the kernel as a custom operation
        on every thread of the pool."""
        args = (P * 2)(weight, step.op("cast", x, self.activations))
        rows, columns = tensor(weight).ne[1], tensor(x).ne[1]
        return step.op(
            "custom_4d", TYPE_F32, rows, columns, 1, 1, args, 2, self.function, N_TASKS_MAX, None
        )


def _function(symbol) -> int:
    address = ctypes.cast(symbol, P).value
    assert address is not None  # a symbol the library exports
    return address


class Kernels:
    """ollamakit's own kernels (``kernels*.c``, built for this CPU by ``ollamakit build-ggml``),
    as function pointers for ``ggml_custom_4d``. Each product's output (``products``, by weight
    type) is what ggml's own product gives, bit for bit; only x86 CPUs with AVX2, FMA and F16C
    have them (elsewhere ggml's kernels sum in other orders), and each is checked against ggml
    on this CPU before its first use (``product``). The encoders' float32 kernels (product,
    GELU, attention) need AVX-512 too, and are None without it."""

    def __init__(self, handle: ctypes.CDLL, library: Library | None = None):
        self.handle = handle  # keeps the library loaded while ggml may call into it
        self.library = library  # the ggml whose products the kernels must equal
        self.mul_mat_q4_1 = _function(handle.ollamakit_mul_mat_q4_1)
        # By weight type. ggml multiplies Q4_1 and Q5_1 a column at a time, so their kernels
        # pay at any width; Q6_K too, up to 7 columns (from 8, ggml's own tiled K-quant products take it,
        # or from 1 where GGML_CPU_TILED_MM_FORCE says so). Q8_0 and Q5_0 go to llamafile's
        # tiled products, which repeat only a sign flip per column: their kernels pay where the
        # weights stream from memory, in steps of a few sequences decoding together, and prompts
        # keep llamafile's tiles. Q4_K lies repacked, 8 rows interleaved, and ggml multiplies it
        # with its gemm per 4 columns and its gemv per column left over: its kernel reads the
        # interleaved blocks once for every 4 columns with fewer operations a value, and is
        # faster than ggml's gemv for a single column too (performance.md), so it takes that.
        self.products = {
            TYPE_Q4_1: Product(TYPE_Q8_1, self.mul_mat_q4_1, None),
            TYPE_Q5_1: Product(TYPE_Q8_1, _function(handle.ollamakit_mul_mat_q5_1), None),
            TYPE_Q8_0: Product(TYPE_Q8_0, _function(handle.ollamakit_mul_mat_q8_0), Q0_MOST_ROWS),
            TYPE_Q5_0: Product(TYPE_Q8_0, _function(handle.ollamakit_mul_mat_q5_0), Q0_MOST_ROWS),
            TYPE_Q6_K: Product(TYPE_Q8_K, _function(handle.ollamakit_mul_mat_q6_k), 7),
            TYPE_Q4_K: Product(
                TYPE_Q8_K,
                _function(handle.ollamakit_mul_mat_q4_k),
                Q4_K_MOST_ROWS,
                repacked=True,
                fewest_rows=1,
            ),
        }
        if os.environ.get("GGML_CPU_TILED_MM_FORCE", "").strip() == "1":
            del self.products[TYPE_Q6_K]
        # the encoders' float32 kernels (``graph_bert``); None without AVX-512
        f32 = bool(handle.ollamakit_f32_supported())
        self.mul_mat_f32, self.gelu_erf, self.attention_f32 = (
            _function(getattr(handle, f"ollamakit_{name}")) if f32 else None
            for name in ("mul_mat_f32", "gelu_erf", "attention_f32")
        )
        self._checked: dict[int, Product | None] = {}
        self._lock = threading.Lock()

    def product(self, weight_type: int) -> Product | None:
        """The kernel for weights of ``weight_type``, None without one or where it does not give
        ggml's products bit for bit on this machine (a CPU or a compiler the kernel's order of
        operations was not written for): the engine then keeps ggml's own product, and with it
        llama.cpp's numerics. Checked at the first ask, once per process (``check.agrees``)."""
        with self._lock:
            if weight_type not in self._checked:
                product = self.products.get(weight_type)
                if product is not None and not self._agrees(weight_type, product):
                    product = None
                self._checked[weight_type] = product
            return self._checked[weight_type]

    def _agrees(self, weight_type: int, product: Product) -> bool:
        from .check import agrees

        library = self.library or load()
        name = library.ggml_type_name(weight_type).decode()
        try:
            if agrees(library, weight_type, product):
                return True
            why = "its products are not ggml's bit for bit on this CPU"
        except Exception as error:  # a check that cannot run vouches for nothing
            why = f"its check failed ({error})"
        logging.getLogger("ollamakit.ggml").warning(
            "ollamakit's %s kernel is off: %s; %s products are ggml's own", name, why, name
        )
        return False

    @classmethod
    def load(cls, folder: Path, library: Library | None = None) -> Kernels | None:
        """The kernels built beside the ggml libraries in ``folder``; None without them, or
        where they do not apply (another CPU, another ``struct ggml_tensor``)."""
        if os.environ.get("OLLAMAKIT_KERNELS", "1").lower() in ("0", "false", "no", "off"):
            return None
        from .native import kernels_name

        path = folder / kernels_name()
        if not path.exists():
            return None
        handle = ctypes.CDLL(str(path))
        handle.ollamakit_tensor_size.restype = SIZE
        if not handle.ollamakit_kernels_supported():
            return None
        if handle.ollamakit_tensor_size() != ctypes.sizeof(Tensor):
            return None
        return cls(handle, library)


def _log_line(level: int, text: bytes | None, _data) -> None:
    if level in (LOG_LEVEL_WARN, LOG_LEVEL_WARN + 1) and text:  # warnings and errors
        import logging

        logging.getLogger("ollamakit.ggml").warning(text.decode(errors="replace").rstrip())


def _library_folder() -> Path:
    import libggml  # the libggml-python wheel

    root = Path(libggml.__file__).parent
    for sub in ("lib64", "lib"):
        if (root / sub / "libggml-base.so").exists():
            return root / sub
    raise OSError(f"no ggml libraries under {root}")


@lru_cache(maxsize=1)
def load() -> Library:
    """The ggml library, loaded once per process (raises ImportError or OSError without it):
    the folder ``OLLAMAKIT_GGML_LIBRARY`` names, else the build made for this CPU by
    ``ollamakit build-ggml``, else the prebuilt wheel's."""
    import os

    from . import native

    override = os.environ.get("OLLAMAKIT_GGML_LIBRARY")
    if override:
        return Library(Path(override), "OLLAMAKIT_GGML_LIBRARY")
    built = native.built_folder()
    if built is not None:
        return Library(built, "built for this CPU (ollamakit build-ggml)")
    if native.lacks_avx2():
        # the wheel's kernels would stop the process on their first AVX2 instruction
        raise OSError(
            "the prebuilt ggml needs AVX2, which this CPU lacks: run `ollamakit build-ggml`"
        )
    return Library(_library_folder(), "prebuilt (libggml-python)")


def tensor(pointer: int) -> Tensor:
    """The struct behind a tensor pointer (a view of ggml's memory, not a copy)."""
    return Tensor.from_address(pointer)
