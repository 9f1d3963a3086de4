"""The engine on the ``cuda`` backend gives the numpy backend's logits (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit_cuda import CudaBackend
from ollamakit_engine import build_runner
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit_numpy import NumpyBackend

from .tiny_models import write_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not CudaBackend.available(), reason="needs CuPy and a CUDA device"),
]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_cuda_matches_numpy(tmp_path, arch):
    path = tmp_path / "m.gguf"
    write_model(path, arch, n_layers=6, window=4, n_kv_heads=1 if arch == "gemma3" else 2)
    prompt = [3, 14, 15, 92, 65, 35, 89, 79]
    logits = {}
    for name, backend in (("numpy", NumpyBackend()), ("cuda", CudaBackend())):
        with GGUFFile.open(path) as gguf:
            runner = build_runner(gguf, backend)
        caches = [runner.new_cache(16), runner.new_cache(16)]
        first = runner.forward([(caches[0], prompt), (caches[1], prompt[:3])])
        second = runner.forward([(caches[0], [7]), (caches[1], [8])])
        logits[name] = np.stack(first + second)
        assert all(isinstance(row, np.ndarray) for row in first + second)
    np.testing.assert_allclose(logits["cuda"], logits["numpy"], atol=1e-3)


def test_backend_reports_device_memory():
    free, total = CudaBackend().memory_info()
    assert 0 < free <= total
