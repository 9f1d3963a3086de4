"""Compute backend ``ggml``: transformer steps as ggml graphs on the CPU.

Weights stay in their GGUF blocks (the file is memory-mapped, read-only) and ggml multiplies
them there with llama.cpp's own kernels: activations quantized to each weight type's partner
(Q8_0, Q8_1, Q8_K), flash attention over a float16 cache, ggml's thread pool. The engine builds
one graph per step with the ggml library (``ollamakit.lib.ggml``); this backend owns the
thread pool.

Arrays outside the graph (logits, embeddings of models the graph engine does not run) are
numpy's, so everything written for the ``numpy`` backend runs here too.
"""

from __future__ import annotations

import ctypes
import os
import threading

from ollamakit.interfaces import ComputeBackend


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class GgmlBackend(ComputeBackend):
    name = "ggml"
    # The engine asks for graphs when the backend says it runs them (see ollamakit_engine.loader).
    runs_graphs = True
    default_threads = _cores()

    def __init__(self, kernel=None):
        super().__init__(kernel)
        from ollamakit.lib.ggml import lib

        self.lib = lib.load()
        self._lock = threading.Lock()
        self._pools: dict[int, int] = {}

    @classmethod
    def available(cls) -> bool:
        try:
            from ollamakit.lib.ggml import lib

            lib.load()
        except (ImportError, OSError):
            return False
        return True

    @property
    def xp(self):
        import numpy  # imported here: the CLI starts without it

        return numpy

    def synchronize(self) -> None:
        """ggml's compute returns when the graph is done."""

    @staticmethod
    def pool_size(threads: int) -> int:
        """The workers a model asking for ``threads`` computes with: at most the cores this
        process may use, since more would only wait for each other at ggml's barriers."""
        return max(1, min(threads, _cores()))

    def threadpool(self, threads: int) -> int:
        """ggml's thread pool of ``pool_size(threads)`` workers, made once and shared by every
        model.

        A pool keeps its workers between graphs (they poll briefly, then sleep), so a decode
        step does not pay for starting threads."""
        threads = self.pool_size(threads)
        with self._lock:
            pool = self._pools.get(threads)
            if pool is None:
                params = self.lib.ggml_threadpool_params_default(threads)
                pool = self.lib.ggml_threadpool_new(ctypes.byref(params))
                if not pool:
                    raise RuntimeError(f"ggml could not start a pool of {threads} threads")
                self._pools[threads] = pool
            return pool
