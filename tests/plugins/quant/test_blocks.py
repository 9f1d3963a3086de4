"""Every block encoder against llama.cpp's reference quantizers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.lib.gguf import dequantize
from ollamakit_quant import kquants, legacy

ENCODERS = {
    "Q4_0": legacy.q4_0,
    "Q4_1": legacy.q4_1,
    "Q5_0": legacy.q5_0,
    "Q5_1": legacy.q5_1,
    "Q8_0": legacy.q8_0,
    "Q2_K": kquants.q2_K,
    "Q3_K": kquants.q3_K,
    "Q4_K": kquants.q4_K,
    "Q5_K": kquants.q5_K,
    "Q6_K": kquants.q6_K,
}
BLOCK = {name: 32 if name[-1] != "K" else 256 for name in ENCODERS}


def f16_rows(rows: int, width: int, seed: int = 0) -> np.ndarray:
    """Random F16-representable rows at many scales, followed by the awkward cases."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, width)) * np.exp(rng.uniform(-6, 2, (rows, 1)))
    x = x.astype(np.float16).astype(np.float32)
    edge = [
        np.zeros(width),  # all zeros
        np.full(width, -0.0),  # all negative zeros
        np.full(width, 0.75),
        np.full(width, -3.5),  # constant rows
        -np.abs(x[0]),
        np.abs(x[1]),  # one sign only
        np.where(np.arange(width) % 7 == 0, x[2], 0),  # sparse
        np.where(np.arange(width) == 5, 60000.0, x[3]),  # a huge outlier
        np.where(np.arange(width) == 9, -65504.0, x[4] * 1e-3),
        np.full(width, 6e-8),  # smallest F16 subnormal
        np.where(np.arange(width) % 16 == 0, 1.0, 0.0),  # one value per sub-block
        np.where(np.arange(width) < width // 2, 0.0, x[5]),  # half-empty super-blocks
        np.tile(np.linspace(-1, 1, 16), width // 16),  # evenly spaced levels (rounding ties)
    ]
    return np.concatenate([x, np.asarray(edge, dtype=np.float16).astype(np.float32)])


@pytest.mark.parametrize("type_name", list(ENCODERS))
def test_blocks_equal_llama_cpp(reference, type_name):
    x = f16_rows(48, 512, seed=len(type_name))
    ours = ENCODERS[type_name](x.reshape(-1, BLOCK[type_name]))
    theirs = reference.reference_blocks(type_name, x)
    mismatched = np.flatnonzero((ours != theirs).any(axis=1))
    assert ours.shape == theirs.shape
    assert not mismatched.size, f"{type_name}: blocks {mismatched[:10]} differ"


@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_blocks_equal_gguf_py(type_name):
    """The gguf package implements the 32-element types; it writes +0.0 where ggml writes the
    scale of an all-negative-zero block as -0.0 (we follow ggml), so that row is left out."""
    import gguf
    from gguf.quants import quantize

    x = f16_rows(64, 256, seed=3)
    x = x[~np.all(np.signbit(x) & (x == 0), axis=1)]
    ours = ENCODERS[type_name](x.reshape(-1, 32))
    theirs = quantize(x, gguf.GGMLQuantizationType[type_name]).reshape(ours.shape)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("type_name", list(ENCODERS))
def test_blocks_decode_close_to_the_input(type_name):
    """Independent of any reference: the decoded values track the input, tighter with more bits."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 1024)).astype(np.float32)
    decoded = dequantize(
        ENCODERS[type_name](x.reshape(-1, BLOCK[type_name])).reshape(-1), type_name, (1024, 16)
    )
    relative = np.sqrt(np.mean((decoded - x) ** 2) / np.mean(x**2))
    bound = {
        "Q2_K": 0.45,
        "Q3_K": 0.2,
        "Q4_0": 0.12,
        "Q4_1": 0.12,
        "Q4_K": 0.1,
        "Q5_0": 0.06,
        "Q5_1": 0.06,
        "Q5_K": 0.05,
        "Q6_K": 0.025,
        "Q8_0": 0.01,
    }[type_name]
    assert relative < bound


@pytest.mark.parametrize("type_name", list(ENCODERS))
def test_zero_blocks_decode_to_zero(type_name):
    x = np.zeros((2, 256), dtype=np.float32)
    decoded = dequantize(
        ENCODERS[type_name](x.reshape(-1, BLOCK[type_name])).reshape(-1), type_name, (256, 2)
    )
    assert not decoded.any()
