"""``num_thread`` on the ggml engine: the thread count ggml computes the model's graphs with."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest
from ollamakit_ggml import GgmlBackend

from ollamakit.errors import BadRequest
from ollamakit.lib.ggml import lib as L

from .tiny_models import load, write_model

CORES = len(os.sched_getaffinity(0))
KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("graph-threads") / "llama.gguf"
    write_model(path, "llama")
    return path


def ggml_threads(runner) -> set[int]:
    """The thread counts ggml hands a custom operation run on every thread of the runner's
    compute (``nth``): what its graphs run with."""
    seen: set[int] = set()

    @KERNEL
    def record(_dst, _ith, nth, _userdata):
        seen.add(nth)

    step = runner.compute.step(8)
    try:
        x = step.input(np.zeros(4, np.float32))
        out = step.op(
            "custom_4d",
            L.TYPE_F32,
            4,
            1,
            1,
            1,
            (ctypes.c_void_p * 1)(x),
            1,
            ctypes.cast(record, ctypes.c_void_p).value,
            L.N_TASKS_MAX,
            None,
        )
        step.output(out)
        runner.compute.run(step)
    finally:
        step.close()
    return seen


@pytest.mark.parametrize("num_thread", [1, 2])
def test_num_thread_sets_the_threads_ggml_computes_with(path, num_thread):
    runner = load(path, GgmlBackend(), num_thread=num_thread)
    expected = min(num_thread, CORES)
    assert runner.threads == expected
    assert ggml_threads(runner) == {expected}
    logits = runner.forward([(runner.new_cache(16), [5, 17, 3, 88])])[0]
    assert np.isfinite(logits).all()


def test_without_num_thread_every_core_the_process_may_use(path):
    runner = load(path, GgmlBackend())
    assert ggml_threads(runner) == {CORES}
    # more than the cores would only wait at ggml's barriers: capped
    assert ggml_threads(load(path, GgmlBackend(), num_thread=CORES + 3)) == {CORES}


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_bad_num_thread_is_a_bad_request_on_ggml(path, value):
    with pytest.raises(BadRequest, match="num_thread"):
        load(path, GgmlBackend(), num_thread=value)
