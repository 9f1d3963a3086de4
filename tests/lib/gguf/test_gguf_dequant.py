"""Dequantization against the gguf package's reference implementation, for every type."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize as reference

from ollamakit.lib.gguf.dequant import dequantize, supported_types
from ollamakit.lib.gguf.reader import GGUFFile

# Byte offsets of the float16 scales in each block type: random bytes there would often be
# inf/NaN, which compare badly, so they get finite values instead.
F16_FIELDS = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "Q8_1": [0, 2],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q6_K": [208],
    "IQ4_NL": [0],
    "IQ4_XS": [0],
    "IQ2_XXS": [0],
    "IQ2_XS": [0],
    "IQ2_S": [0],
    "IQ3_XXS": [0],
    "IQ3_S": [0],
    "IQ1_S": [0],
    "IQ1_M": [],
    "TQ1_0": [52],
    "TQ2_0": [64],
}
WITH_REFERENCE = [
    name
    for name in supported_types()
    if name not in {"Q8_1", "Q8_K", "I8", "I16", "I32", "I64", "F64"}
]


def random_blocks(name: str, n_blocks: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for at in F16_FIELDS.get(name, []):
        raw[:, at : at + 2] = (
            rng.uniform(-2, 2, size=(n_blocks, 1)).astype(np.float16).view(np.uint8)
        )
    if name in ("F16",):
        raw = rng.standard_normal(n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    if name in ("F32", "BF16"):
        raw = rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
        if name == "BF16":
            raw = raw[:, 2:].copy()
    return raw


def test_every_llama_cpp_model_type_is_supported():
    for name in [
        "F32",
        "F16",
        "BF16",
        "Q4_0",
        "Q4_1",
        "Q5_0",
        "Q5_1",
        "Q8_0",
        "Q2_K",
        "Q3_K",
        "Q4_K",
        "Q5_K",
        "Q6_K",
        "IQ4_NL",
        "IQ4_XS",
        "MXFP4",
        "IQ2_XXS",
        "IQ3_S",
        "TQ2_0",
    ]:
        assert name in supported_types()


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_matches_reference_bit_for_bit(name):
    block, _ = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    n_blocks = 96 if block > 1 else 3000
    raw = random_blocks(name, n_blocks)
    with np.errstate(all="ignore"):  # random exponents overflow in the reference too
        expected = np.asarray(reference(raw, GGMLQuantizationType[name]), dtype=np.float32).reshape(
            -1
        )
    rows = 3 if (n_blocks * block) % 3 == 0 and block * (n_blocks // 3) else 1
    ours = dequantize(raw.reshape(-1), GGMLQuantizationType[name], (n_blocks * block // rows, rows))
    assert ours.dtype == np.float32 and ours.shape == (rows, n_blocks * block // rows)
    np.testing.assert_array_equal(ours.reshape(-1), expected)


def test_types_without_a_reference_follow_their_definition():
    rng = np.random.default_rng(3)
    # Q8_1: f16 d, f16 sum (unused), 32 int8.
    d = rng.uniform(-1, 1, 8).astype(np.float16)
    q = rng.integers(-128, 128, (8, 32), dtype=np.int8)
    raw = np.concatenate(
        [d.view(np.uint8).reshape(8, 2), np.zeros((8, 2), np.uint8), q.view(np.uint8)], axis=1
    )
    np.testing.assert_array_equal(
        dequantize(raw, "Q8_1", (256,)), (d.astype(np.float32)[:, None] * q).reshape(-1)
    )
    # Q8_K: f32 d, 256 int8, 16 int16 block sums (unused).
    d32 = rng.uniform(-1, 1, 2).astype(np.float32)
    q = rng.integers(-128, 128, (2, 256), dtype=np.int8)
    raw = np.concatenate(
        [d32.view(np.uint8).reshape(2, 4), q.view(np.uint8), np.zeros((2, 32), np.uint8)], axis=1
    )
    np.testing.assert_array_equal(dequantize(raw, "Q8_K", (512,)), (d32[:, None] * q).reshape(-1))
    for name, dtype in [("I8", np.int8), ("I16", np.int16), ("I32", np.int32), ("F64", np.float64)]:
        values = rng.integers(-100, 100, 12).astype(dtype)
        np.testing.assert_array_equal(
            dequantize(values.view(np.uint8), name, (4, 3)), values.reshape(3, 4)
        )


def test_q4_0_by_hand():
    # d = 0.5; nibbles 0..15 in the low halves, 15..0 in the high halves.
    qs = np.array([(15 - i) << 4 | i for i in range(16)], dtype=np.uint8)
    raw = np.concatenate([np.array([0.5], np.float16).view(np.uint8), qs])
    expected = np.concatenate([np.arange(16) - 8, np.arange(15, -1, -1) - 8]) * 0.5
    np.testing.assert_array_equal(dequantize(raw.tobytes(), 2, (32,)), expected.astype(np.float32))


def test_shape_is_row_major():
    values = np.arange(24, dtype=np.float32)
    out = dequantize(values.view(np.uint8), "F32", (4, 3, 2))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, values.reshape(2, 3, 4))


def test_large_tensor_spans_many_slices():
    raw = random_blocks("Q4_K", 4000, seed=5)  # more blocks than one decoding slice holds
    expected = reference(raw, GGMLQuantizationType.Q4_K).reshape(-1)
    np.testing.assert_array_equal(dequantize(raw, "Q4_K", (256 * 4000,)), expected)


def test_wrong_size_and_bad_shape():
    with pytest.raises(ValueError, match="needs 36 bytes, got 18"):
        dequantize(np.zeros(18, np.uint8), "Q4_0", (32, 2))
    with pytest.raises(ValueError, match="not a multiple of the Q4_0 block size"):
        dequantize(np.zeros(18, np.uint8), "Q4_0", (16, 2))
    with pytest.raises((ValueError, KeyError)):
        dequantize(np.zeros(4, np.uint8), 99, (1,))


@pytest.mark.real_model
@pytest.mark.parametrize("model", ["smollm2_q4_1", "gemma3_270m"])
def test_real_model_tensors_match_reference(model):
    from ollamakit.testing import models

    with GGUFFile.open(getattr(models, model)()) as g:
        smallest = {}  # the smallest tensor of each type keeps the reference run short
        for info in sorted(g.tensors, key=lambda t: t.nbytes, reverse=True):
            smallest[info.type_name] = info
        for info in smallest.values():
            ours = g.tensor(info.name)
            assert ours.shape == tuple(reversed(info.shape))
            # The reference is slow: compare the first rows (at most about a million values).
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(info.ggml_type)]
            row_bytes = info.shape[0] // block * size
            rows = max(1, min(info.nbytes // row_bytes, (1 << 20) // info.shape[0]))
            raw = g.raw(info.name)[: rows * row_bytes]
            expected = reference(raw.reshape(-1, size), GGMLQuantizationType(info.ggml_type))
            np.testing.assert_array_equal(
                ours.reshape(-1)[: rows * info.shape[0]],
                np.asarray(expected, np.float32).reshape(-1),
            )
        assert set(smallest) >= (
            {"Q4_1", "Q8_0", "F32"}
            if model == "smollm2_q4_1"
            else {"Q4_K", "Q6_K", "Q5_0", "Q8_0", "F32"}
        )
