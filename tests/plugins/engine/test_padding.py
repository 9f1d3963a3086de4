"""Zero-column padding of matrices just under the BLAS threading size: faster, and invisible."""

from __future__ import annotations

import numpy as np

from ollamakit_engine.ops import Ops
from ollamakit_numpy import NumpyBackend

from .tiny_models import load, write_model


class SmallThresholdBackend(NumpyBackend):
    """Pretends the BLAS threads products from 20000 elements: the test model's 128 x 128
    attention output (16384) is just under it."""

    matvec_threading_elements = 20000


class UnthreadedBackend(NumpyBackend):
    matvec_threading_elements = 0


def test_padded_width_rules():
    ops = Ops(SmallThresholdBackend())
    assert ops.padded_width(128, 128) == 192  # ceil(20000 / 128) = 157, rounded up to 64s
    assert ops.padded_width(128, 192) == 192  # already threaded
    assert ops.padded_width(96, 128) == 128  # would need 256 columns: twice the bytes
    assert ops.padded_width(150, 120) == 120  # not a multiple of 64
    assert Ops(UnthreadedBackend()).padded_width(128, 128) == 128


def test_padding_leaves_every_logit_unchanged(tmp_path):
    path = tmp_path / "llama.gguf"
    write_model(path, arch="llama", n_embd=128)
    plain = load(path, UnthreadedBackend())
    padded = load(path, SmallThresholdBackend())
    attn_out = padded.model.weights.layers[0].attn_out
    assert (
        attn_out.weight.shape == (128, 192)
        and attn_out.shape == (128, 128)
        and attn_out.width == 128
    )
    assert not attn_out.weight[:, 128:].any()

    prompt, other = [5, 17, 3, 88, 42, 9, 61, 23], [7, 1, 2]
    caches = {
        name: (runner.new_cache(32), runner.new_cache(32))
        for name, runner in (("plain", plain), ("padded", padded))
    }
    for name, runner in (("plain", plain), ("padded", padded)):
        a, b = caches[name]
        logits = runner.forward([(a, prompt), (b, other)])
        for step in range(4):  # single decode rows, then both sequences in one step
            logits = runner.forward([(a, [int(np.argmax(logits[0]))])]) + [logits[1]]
            logits = runner.forward(
                [(a, [int(np.argmax(logits[0]))]), (b, [int(np.argmax(logits[1]))])]
            )
        caches[name] = logits
    for mine, theirs in zip(caches["padded"], caches["plain"]):
        np.testing.assert_array_equal(mine, theirs)
