"""``ggml_kquants`` against ggml itself: Q8_K activations, Q6_K and repacked Q4_K products.

Bit-equal float32 results, not close ones: where llama-cpp-python is installed, against
libggml-cpu's own kernels (and, for the kernel choice by row count, against a whole
``ggml_mul_mat``); without it, against values recorded from it (llama-cpp-python 0.3.36, x86
AVX512 build) for fixed inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from ollamakit_engine import ggml_kquants as kq
from ollamakit_engine.ggml_numerics import TILED_FROM_ROWS, product

from . import libggml

F32 = np.float32
needs_libggml = pytest.mark.skipif(libggml.library() is None, reason="llama-cpp-python is not installed")


def q4_k_blocks(out: int, width: int, seed: int) -> np.ndarray:
    """Raw Q4_K rows (out, width / 256 * 144): random quants and 6-bit scales, plausible d."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (out, width // 256, kq.Q4_K_BYTES), dtype=np.uint8)
    scales = rng.uniform(1e-4, 2e-3, (out, width // 256, 2)).astype(np.float16)
    blocks[..., :4] = scales.view(np.uint8).reshape(out, width // 256, 4)
    return blocks.reshape(out, -1)


def q6_k_blocks(out: int, width: int, seed: int) -> np.ndarray:
    """Raw Q6_K rows (out, width / 256 * 210): random quants and int8 scales, plausible d."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (out, width // 256, kq.Q6_K_BYTES), dtype=np.uint8)
    d = rng.uniform(1e-4, 2e-3, (out, width // 256, 1)).astype(np.float16)
    blocks[..., 208:] = d.view(np.uint8).reshape(out, width // 256, 2)
    return blocks.reshape(out, -1)


def activations(rows: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, width)).astype(F32)
    x[:, :32] *= 40  # outliers, as real activations have
    x[:, 300 % width] = -1000  # a block whose extreme is negative
    return x


def bits(values) -> list[str]:
    return [f"{int(v):08x}" for v in np.asarray(values, F32).reshape(-1).view(np.uint32)]


def test_rows_kept_from_a_step_keep_their_kernel():
    """The last layer multiplies only the rows it outputs; each keeps the kernel its place in the
    whole step gave it: the Q4_K gemm below the step's last multiple of 4 rows, the gemv after."""
    blocks = q4_k_blocks(40, 1024, seed=8)
    matrix = kq.Q4KMatrix(blocks.reshape(-1), 40, 1024)
    x = activations(2, 1024, seed=9)
    gemm, gemv = matrix.product(x, gemm_rows=2), matrix.product(x)
    assert all(bits(gemm[row]) != bits(gemv[row]) for row in range(2))  # the kernels tell apart
    assert bits(product(matrix, x, 12, [3, 11])) == bits(gemm)
    assert bits(product(matrix, x, 11, [7, 10])) == bits(np.concatenate([gemm[:1], gemv[1:]]))
    assert bits(product(matrix, x, 11, [8, 10])) == bits(gemv)


# -- with libggml ---------------------------------------------------------------------------------


@needs_libggml
def test_q8_k_quantizing_equals_libggml():
    x = activations(5, 1024, seed=1)
    x[2, 256:512] = 0  # an empty block
    q, d, sums = libggml.parse_q8_k(libggml.quantize_q8_k(x))
    ours_q, ours_d, ours_sums = kq.quantize_q8_k(x)
    assert np.array_equal(ours_q, q)
    assert bits(ours_d) == bits(d)
    assert np.array_equal(ours_sums, sums)


@needs_libggml
def test_q6_k_vec_dot_equals_libggml():
    blocks = q6_k_blocks(24, 1024, seed=2)
    matrix = kq.Q6KMatrix(blocks.reshape(-1), 24, 1024)
    x = activations(3, 1024, seed=3)
    got = matrix.product(x)
    for row in range(3):
        assert bits(got[row]) == bits(libggml.dot_q6_k(blocks, x[row]))


@needs_libggml
@pytest.mark.parametrize("rows", [TILED_FROM_ROWS - 1, TILED_FROM_ROWS, 17])
def test_q6_k_kernel_follows_the_rows_of_a_product(rows):
    """ggml_mul_mat takes the vec-dot below 8 rows and its tiled gemm from 8: both reproduced."""
    blocks = q6_k_blocks(24, 512, seed=4)
    matrix = kq.Q6KMatrix(blocks.reshape(-1), 24, 512)
    x = activations(rows, 512, seed=5)
    expected = libggml.mul_mat(blocks, libggml.GGML_TYPE_Q6_K, 512, x)
    assert bits(product(matrix, x, rows)) == bits(expected)
    other = matrix.product(x, tiled=rows < TILED_FROM_ROWS)  # the kernel not taken differs
    assert bits(other) != bits(expected)


@needs_libggml
def test_q4_k_gemv_and_gemm_equal_libggml():
    blocks = q4_k_blocks(40, 1024, seed=6)
    matrix = kq.Q4KMatrix(blocks.reshape(-1), 40, 1024)
    x = activations(4, 1024, seed=7)
    gemv = matrix.product(x)
    for row in range(4):
        assert bits(gemv[row]) == bits(libggml.gemv_q4_k(blocks, x[row]))
    assert bits(matrix.product(x, gemm_rows=4)) == bits(libggml.gemm_q4_k(blocks, x))
    assert bits(matrix.product(x, gemm_rows=4)) != bits(gemv)  # the two kernels do differ


# -- without it: values recorded from libggml-cpu ----------------------------------------------------

# for q6_k_blocks(4, 256, seed=8) / q4_k_blocks(8, 256, seed=8) and activations(rows, 256, seed=9)
RECORDED = {
    "q6_k_vec_dot": ["c4b77a00", "44c1a0a0", "4404781c", "c486e86e"],
    "q6_k_tiled_rows_0_and_8": ["c4b779ff", "44c1a0a0", "4404781d", "c486e86c",
                                "c4931c16", "4241335a", "44bc0772", "c49aae4d"],
    "q4_k_gemv": ["c4898346", "c2e2ee40", "c3a233a6", "4279bc65",
                  "c34a79ab", "c3196143", "c4242e7a", "c3034fb3"],
    "q4_k_gemm_first_two": ["c4898346", "c2e2ee40", "c48bc3a7", "c331744d",
                            "c48a633d", "c29db33e", "c488ecb7", "c3a56600"],
}


def test_q6_k_recorded():
    matrix = kq.Q6KMatrix(q6_k_blocks(4, 256, seed=8).reshape(-1), 4, 256)
    x = activations(9, 256, seed=9)
    assert bits(matrix.product(x[:1])) == RECORDED["q6_k_vec_dot"]
    tiled = matrix.product(x, tiled=True)
    assert bits(tiled[[0, 8]]) == RECORDED["q6_k_tiled_rows_0_and_8"]


def test_q4_k_recorded():
    matrix = kq.Q4KMatrix(q4_k_blocks(8, 256, seed=8).reshape(-1), 8, 256)
    x = activations(4, 256, seed=9)
    assert bits(matrix.product(x[:1])) == RECORDED["q4_k_gemv"]
    assert bits(matrix.product(x, gemm_rows=4)[:, :2]) == RECORDED["q4_k_gemm_first_two"]


def test_reordered_outputs_multiply_as_the_original():
    matrix = kq.Q6KMatrix(q6_k_blocks(16, 512, seed=10).reshape(-1), 16, 512)
    order = np.random.default_rng(11).permutation(16)
    x = activations(3, 512, seed=12)
    assert bits(matrix.rows(order).product(x)) == bits(matrix.product(x)[:, order])
    q4 = kq.Q4KMatrix(q4_k_blocks(16, 512, seed=10).reshape(-1), 16, 512)
    assert bits(q4.rows(order).product(x, gemm_rows=0)) == bits(q4.product(x)[:, order])


def test_truncated_tensor_is_refused():
    from ollamakit.errors import InvalidModelFile

    with pytest.raises(InvalidModelFile):
        kq.Q6KMatrix(q6_k_blocks(4, 256, seed=1).reshape(-1)[:-1], 4, 256)
    with pytest.raises(InvalidModelFile):
        kq.Q4KMatrix(np.zeros(144, np.uint8), 1, 100)

