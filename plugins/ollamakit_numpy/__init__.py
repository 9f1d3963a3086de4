"""Compute backend ``numpy``: the CPU reference backend.

The engine writes its architectures once against an array module; this backend supplies numpy
(float32 BLAS through whatever library numpy was built with). It always works, so ``auto``
falls back to it when no accelerator is present.
"""

from __future__ import annotations

import os

import numpy

from ollamakit.interfaces import ComputeBackend


def _blas_threads() -> int:
    """How many threads the BLAS may use: the cores this process may run on, unless limited."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return min(cores, int(value))
    return cores


class NumpyBackend(ComputeBackend):
    name = "numpy"

    # OpenBLAS (measured with 0.3.31, as numpy 2 wheels bundle it) runs a matrix-vector product
    # on a single thread below 115200 x GEMM_MULTITHREAD_THRESHOLD (4) matrix elements. Decoding
    # is bound by memory bandwidth, which one core only half uses, so the engine pads matrices
    # just under this size with zero columns (see ``Ops.padded_width``). Elsewhere the padding
    # costs a few bytes and changes no value.
    matvec_threading_elements = 115_200 * 4 if _blas_threads() > 1 else 0

    @classmethod
    def available(cls) -> bool:
        return True

    @property
    def xp(self):
        return numpy

    def synchronize(self) -> None:
        """Work is done when the call returns on the CPU; nothing to wait for."""
