"""Whether one of ollamakit's kernels gives ggml's own products, bit for bit, on this machine.

Each kernel of ``kernels.c`` repeats the operations of one of ggml's products in ggml's order, as
ggml's x86 code performs them. A CPU whose ggml build takes another path (other instructions,
another order of its sums), or a compiler that contracts or reorders the kernel's float
arithmetic, would make its products differ from ggml's in the last bits, and with them the
engine's answers from llama.cpp's wherever two tokens are close. So before its first use each
kernel multiplies a small random matrix of its weight type beside ggml's own product of the same
matrix, in one graph, and is used only if every output is the same bits (``Kernels.product``).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import lib as L
from .graph import Compute, Tensors, array

WIDTH = 512  # values a weight row: whole blocks of every type (K-quants take 256)
COUNT = 19  # weight rows: odd, so the kernels' tiles and the threads' shares have remainders
# ggml repacks only matrices of whole groups of 8 rows; 3 groups: one past its tiles of 16 rows
REPACKED_COUNT = 24
# The kernels compile one body per width of a pass over the weights (up to 8 columns), so each
# width they take runs code of its own: every width is checked. A kernel that takes any width
# (Q4_1, Q5_1: tiles of 4 columns, the rest one by one) is checked past two of its tiles.
ANY_WIDTH_CHECKED = 9
# Each output is one thread's work in ggml's products and in the kernels, so the thread count
# changes no bit; one thread keeps a kernel's check to a few milliseconds on a busy machine.
THREADS = 1
SEED = 20250101


def agrees(lib, weight_type: int, product: L.Product) -> bool:
    """``product``'s kernel against ggml's ``mul_mat`` on random weights of ``weight_type``
    (rounded by ggml's own quantizer) and activations with outliers, at each step width the
    kernel takes (``step_rows``): True where every output is ggml's, bit for bit."""
    rng = np.random.default_rng(SEED)
    count = REPACKED_COUNT if product.repacked else COUNT
    weights = _quantized(lib, weight_type, rng.standard_normal((count, WIDTH)).astype(np.float32))
    pool = lib.ggml_threadpool_new(ctypes.byref(lib.ggml_threadpool_params_default(THREADS)))
    if not pool:
        raise RuntimeError("ggml could not start a thread pool")
    compute = Compute(lib, pool, THREADS)
    try:
        for rows in step_rows(product):
            activations = rng.standard_normal((rows, WIDTH)).astype(np.float32)
            activations[:, rng.integers(0, WIDTH, 3)] *= 40  # outliers, as real activations have
            ours, theirs = _products(lib, compute, weight_type, weights, activations, product)
            if not np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)):
                return False
        return True
    finally:
        compute.close()
        lib.ggml_threadpool_free(pool)


def step_rows(product: L.Product) -> range:
    """The activation rows ``agrees`` multiplies by: every step width the kernel takes."""
    return range(product.fewest_rows, (product.most_rows or ANY_WIDTH_CHECKED) + 1)


def _quantized(lib, weight_type: int, values: np.ndarray) -> np.ndarray:
    """``values`` (rows, WIDTH) in ggml's blocks of ``weight_type``."""
    rows, width = values.shape
    blocks = np.empty(lib.ggml_row_size(weight_type, width) * rows, np.uint8)
    lib.ggml_quantize_chunk(
        weight_type, values.ctypes.data, blocks.ctypes.data, 0, rows, width, None
    )
    return blocks


def _products(lib, compute, weight_type, weights, activations, product):
    """The kernel's product and ggml's of the same tensors, from one graph; the weights
    repacked by ggml (as the engine loads them) for a kernel that reads them so."""
    rows = activations.shape[0]
    count = REPACKED_COUNT if product.repacked else COUNT
    tensors = Tensors(lib, 1)
    inputs = Tensors(lib, 1)
    try:
        w = tensors.new(weight_type, WIDTH, count)
        tensors.allocate(lib.repack_buffer_type() if product.repacked else None)
        x = inputs.new(L.TYPE_F32, WIDTH, rows)
        inputs.allocate()
        lib.ggml_backend_tensor_set(w, weights.ctypes.data, 0, weights.nbytes)
        array(x, L.TYPE_F32, (rows, WIDTH))[...] = activations
        step = compute.step(16)
        try:
            ours = step.output(product.multiply(step, w, x))
            theirs = step.output(step.op("mul_mat", w, x))
            compute.run(step)
            return compute.read(ours, rows, count), compute.read(theirs, rows, count)
        finally:
            step.close()
    finally:
        inputs.close()
        tensors.close()
