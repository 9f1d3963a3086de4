"""ollamakit's float32 kernels for the encoders (kernels.c: products of weights packed in
panels, exact GELU, attention over each input's own rows) against plain float64 references, on
shapes that leave partial tiles. They exist on x86 CPUs with AVX-512; elsewhere there is nothing
to check (the encoders then run ggml's own operations)."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

from ollamakit.lib.ggml import lib as L
from ollamakit.lib.ggml.graph import Compute, Tensors, array


@pytest.fixture(scope="module")
def ggml():
    try:
        lib = L.load()
    except (ImportError, OSError):
        pytest.skip("no ggml library")
    kernels = lib.kernels
    if kernels is None or kernels.mul_mat_f32 is None:
        pytest.skip("this CPU has no AVX-512: the encoders use ggml's own operations")
    from ollamakit_ggml import GgmlBackend

    backend = GgmlBackend()
    compute = Compute(lib, backend.threadpool(2), 2)
    yield lib, kernels, compute
    compute.close()


def run(ggml, kernel, shape, values, userdata=None, before=()):
    """``kernel``'s (columns, rows) output from the tensors ``before`` and arrays ``values``."""
    lib, _, compute = ggml
    step = compute.step(32)
    try:
        sources = list(before) + [step.input(v) for v in values]
        args = (ctypes.c_void_p * len(sources))(*sources)
        out = step.output(
            step.op(
                "custom_4d",
                L.TYPE_F32,
                *shape,
                1,
                1,
                args,
                len(sources),
                kernel,
                L.N_TASKS_MAX,
                userdata,
            )
        )
        compute.run(step)
        return compute.read(out, shape[1], shape[0])
    finally:
        step.close()


@pytest.mark.parametrize("k, rows, cols", [(16, 32, 1), (40, 64, 13), (384, 96, 50)])
def test_product_of_panels(ggml, k, rows, cols):
    lib, kernels, _ = ggml
    rng = np.random.default_rng(k)
    weight = rng.standard_normal((rows, k)).astype(np.float32)
    x = rng.standard_normal((cols, k)).astype(np.float32)
    held = Tensors(lib, 1)
    panels = held.new(L.TYPE_F32, 32, k, rows // 32)
    held.allocate()
    array(panels, L.TYPE_F32, (rows // 32, k, 32))[...] = weight.reshape(-1, 32, k).transpose(
        0, 2, 1
    )
    got = run(ggml, kernels.mul_mat_f32, (rows, cols), [x], before=[panels])
    want = x.astype(np.float64) @ weight.T.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * math.sqrt(k))
    held.close()


def test_gelu_is_exact(ggml):
    _, kernels, _ = ggml
    x = np.linspace(-12, 12, 37 * 29, dtype=np.float32).reshape(37, 29)
    got = run(ggml, kernels.gelu_erf, (29, 37), [x])
    want = x * 0.5 * (1 + np.vectorize(math.erf)(x.astype(np.float64) / math.sqrt(2)))
    assert np.all(np.abs(got - want) <= 5e-7 * np.maximum(1, np.abs(want)))


@pytest.mark.parametrize("width", [16, 32, 64])
def test_attention_reads_each_inputs_own_rows(ggml, width):
    _, kernels, _ = ggml
    heads, lengths = 3, [5, 17, 1, 33, 16]
    d, rows = heads * width, sum(lengths)
    rng = np.random.default_rng(width)
    q, k, v = (rng.standard_normal((rows, d)).astype(np.float32) for _ in range(3))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    spans = np.array([[s, n, s, n] for s, n in zip(starts, lengths)], np.int32)
    got = run(ggml, kernels.attention_f32, (d, rows), [q, k, v, spans], heads)
    want = np.zeros((rows, d))
    for s, n in zip(starts, lengths):
        for h in range(heads):
            cols = slice(h * width, (h + 1) * width)
            scores = q[s : s + n, cols].astype(np.float64) @ k[s : s + n, cols].T / math.sqrt(width)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            want[s : s + n, cols] = (p / p.sum(axis=1, keepdims=True)) @ v[s : s + n, cols]
    np.testing.assert_allclose(got, want, atol=2e-6)
