"""``ggml_kernels`` against ggml itself: bit-equal float32 results, not close ones.

Where llama-cpp-python is installed, every kernel is compared with libggml-cpu's own on random
inputs; without it, with values recorded from libggml-cpu (llama-cpp-python 0.3.36, x86 AVX512
build) for fixed inputs. The whole-model proof is in test_real_models.py.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from ollamakit_engine import ggml_kernels as gk
from ollamakit_engine.ggml_numerics import quantized_matrix

from . import libggml

F32 = np.float32
needs_libggml = pytest.mark.skipif(
    libggml.library() is None, reason="llama-cpp-python is not installed"
)
BLOCK_BYTES = {"Q4_1": 20, "Q8_0": 34, "Q5_0": 22}


def random_blocks(type_name: str, out: int, width: int, seed: int) -> np.ndarray:
    """Raw blocks (out, width / 32 * bytes) with plausible float16 scales and random quants."""
    rng = np.random.default_rng(seed)
    size = BLOCK_BYTES[type_name]
    blocks = rng.integers(0, 256, (out * width // 32, size), dtype=np.uint8)
    scales = rng.uniform(1e-3, 2e-2, (blocks.shape[0], 2)).astype(np.float16)
    scales[:, 1] *= -1  # a negative block minimum for Q4_1
    n_scales = 2 if type_name == "Q4_1" else 1
    blocks[:, : 2 * n_scales] = (
        scales[:, :n_scales].view(np.uint8).reshape(blocks.shape[0], -1)
    )
    return blocks.reshape(out, -1)


def activations(rows: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, width)).astype(F32)
    x[:, :32] *= 40  # one block of outliers, as real activations have
    return x


def bits(values) -> list[str]:
    return [
        f"{int(v):08x}" for v in np.asarray(values, F32).reshape(-1).view(np.uint32)
    ]


# -- fused multiply-add ------------------------------------------------------------------------


def correctly_rounded(value: Fraction) -> np.float32:
    """The float32 nearest to ``value``, ties to even, found exactly."""
    guess = np.float32(float(value))
    candidates = [
        np.nextafter(guess, F32(-np.inf)),
        guess,
        np.nextafter(guess, F32(np.inf)),
    ]
    best = min(
        candidates,
        key=lambda c: (
            abs(Fraction(float(c)) - value),
            int(np.asarray(c).view(np.uint32)) & 1,
        ),
    )
    return F32(best)


def test_fma_rounds_once():
    rng = np.random.default_rng(7)
    a = rng.standard_normal(2000).astype(F32)
    b = rng.standard_normal(2000).astype(F32)
    c = (-a * b + rng.standard_normal(2000).astype(F32) * F32(1e-6)).astype(
        F32
    )  # heavy cancellation
    # and sums whose float64 value is a float32 tie: 1 + 3 * 2^-24 (+/- 2^-60)
    tie_a = np.array([1 + 2.0**-23, 1 + 2.0**-23, 1 + 2.0**-18, -1 - 2.0**-18], F32)
    tie_b = np.array([2.0**-23 + 2.0**-24, 2.0**-23 + 2.0**-24] + [2.0**-24 * (1 - 2.0**-18)] * 2, F32)
    tie_c = np.array([1.0, -1.0, 1 + 2.0**-23, -1 - 2.0**-23], F32)
    a, b, c = (np.concatenate(v) for v in ((a, tie_a), (b, tie_b), (c, tie_c)))
    got = gk.fma(a, b, c)
    for x, y, z, r in zip(a, b, c, got):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        assert r == correctly_rounded(exact), (x, y, z)


def test_fma_screening_of_large_arrays_keeps_every_bit():
    """Large arrays round the float64 sum directly and send only float32 midpoints (and tiny
    sums) to the exact path: among them sums that double rounding would get wrong."""
    rng = np.random.default_rng(8)
    n = 2 * gk.FMA_SCREEN_FROM
    a = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(F32)
    b = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(F32)
    c = (-(a.astype(np.float64) * b) * (1 + rng.standard_normal(n) * 1e-6)).astype(F32)
    # (1 + 2^-23) + (2^-24 - 2^-60): the float64 sum is the float32 midpoint 1 + 3 * 2^-24, the
    # exact one is below it; rounding twice would give 1 + 2^-22 (ties to even) instead
    traps = slice(0, n, 5)
    a[traps], b[traps], c[traps] = 1 + 2.0**-18, 2.0**-24 * (1 - 2.0**-18), 1 + 2.0**-23
    a[5::10] *= -1
    c[5::10] *= -1
    c[1::10] = 0
    a[3::10] = 1e-20  # sums below float32's normal range
    got = gk.fma(a, b, c)
    assert bits(got) == bits(gk._fma_round_to_odd(a, b, c))
    for i in list(range(40)) + [n - 1]:
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        assert got[i] == correctly_rounded(exact), i


def test_horizontal_sums_pair_lanes_as_the_instructions_do():
    lanes = np.array([1e8, 1, -1e8, 1, 3, 5, 7, 9], F32)
    # hsum_float_8: (l0+l4)+(l2+l6) and (l1+l5)+(l3+l7)
    expected = (F32(1e8 + 3) + F32(-1e8 + 7)) + (F32(1 + 5) + F32(1 + 9))
    assert gk.hsum8(lanes[:, None])[0] == expected
    sixteen = np.arange(16, dtype=F32) * F32(1e7) + F32(0.5)
    eight = sixteen[8:] + sixteen[:8]
    four = eight[4:] + eight[:4]
    assert gk.reduce16(sixteen) == (four[0] + four[2]) + (four[1] + four[3])


# -- quantized products ------------------------------------------------------------------------


@needs_libggml
@pytest.mark.parametrize("type_name", ["Q4_1", "Q8_0", "Q5_0"])
def test_quantized_matmul_equals_libggml(type_name):
    out, width = 48, 576
    blocks = random_blocks(type_name, out, width, seed=1)
    matrix = quantized_matrix(blocks.reshape(-1), type_name, out, width)
    x = activations(3, width, seed=2)
    got = gk.quantized_matmul(x, matrix)
    for row in range(3):
        expected = libggml.quantized_dot(blocks, type_name, x[row])
        assert bits(got[row]) == bits(expected)


# recorded from libggml-cpu for random_blocks(type, 4, 64, seed=3) and activations(1, 64, seed=4)
RECORDED_DOTS = {
    "Q4_1": ["400674f1", "c1e5ec76", "bfb985fc", "c1d63714"],
    "Q8_0": ["c2692a1f", "c3b33980", "3f532100", "c26d150e"],
    "Q5_0": ["c122b84c", "4234eaa2", "4154788d", "c075ab90"],
}


@pytest.mark.parametrize("type_name", sorted(RECORDED_DOTS))
def test_quantized_matmul_recorded(type_name):
    blocks = random_blocks(type_name, 4, 64, seed=3)
    matrix = quantized_matrix(blocks.reshape(-1), type_name, 4, 64)
    got = gk.quantized_matmul(activations(1, 64, seed=4), matrix)
    assert bits(got[0]) == RECORDED_DOTS[type_name]


# -- float16 products, softmax, SiLU -------------------------------------------------------------


@needs_libggml
def test_dot_f16_rows_equals_libggml():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((20, 256)).astype(np.float16).astype(F32)
    b = rng.standard_normal((20, 256)).astype(np.float16).astype(F32)
    got = gk.dot_f16_rows(a, b)
    assert bits(got) == bits([libggml.dot_f16(x, y) for x, y in zip(a, b)])


@needs_libggml
def test_silu_and_softmax_exponentials_equal_libggml():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(4096) * 6).astype(F32)
    assert bits(gk.silu(x)) == bits(libggml.silu(x))
    scores = (rng.standard_normal(256) * 4).astype(F32)
    scores[200:] = -np.inf  # masked cells
    values, total = libggml.soft_max_exp(scores, scores.max())
    ours = gk.softmax_rows(scores[None])[0]
    assert bits(ours) == bits(values * F32(1.0 / total))


RECORDED_EXP = {
    "inputs": [
        "c2b00000",
        "c0a00000",
        "bf800000",
        "be4ccccd",
        "00000000",
        "3f000000",
        "40490fdb",
        "42aa0000",
    ],
    # ggml_vec_soft_max_f32's exponentials of these inputs (max 0)
    "expf": [
        "0041edc4",
        "3bdcc9fe",
        "3ebc5ab3",
        "3f519856",
        "3f800000",
        "3fd3094c",
        "41b92025",
        "7cc5f63b",
    ],
}


def test_expf_recorded():
    x = np.array([int(h, 16) for h in RECORDED_EXP["inputs"]], np.uint32).view(F32)
    assert bits(gk.expf(x)) == RECORDED_EXP["expf"]
    assert gk.expf(np.array([-np.inf], F32))[0] == 0  # masked scores vanish


def test_gelu_table_limits():
    x = np.array([-20, -10, 0, 10, 20], F32)
    y = gk.geglu(x, np.ones_like(x))
    assert list(y) == [0, 0, 0, 10, 20]
