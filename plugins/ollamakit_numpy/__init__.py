"""Compute backend ``numpy``: the CPU reference backend.

The engine writes its architectures once against an array module; this backend supplies numpy
(float32 BLAS through whatever library numpy was built with). It always works, so ``auto``
falls back to it when no accelerator is present.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy

from ollamakit.interfaces import ComputeBackend


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _blas_threads() -> int:
    """How many threads the BLAS may use: the cores this process may run on, unless limited."""
    cores = _cores()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return min(cores, int(value))
    return cores


_controllers = None
_controllers_lock = threading.Lock()


def _blas_controllers() -> list:
    """threadpoolctl's handles on the BLAS libraries numpy loaded, found once per process."""
    global _controllers
    with _controllers_lock:
        if _controllers is None:
            from threadpoolctl import ThreadpoolController

            _controllers = ThreadpoolController().select(user_api="blas").lib_controllers
        return _controllers


class NumpyBackend(ComputeBackend):
    name = "numpy"

    # Threads BLAS runs with unless a model asks otherwise (its ``num_thread`` option).
    default_threads = _blas_threads()

    # OpenBLAS (measured with 0.3.31, as numpy 2 wheels bundle it) runs a matrix-vector product
    # on a single thread below 115200 x GEMM_MULTITHREAD_THRESHOLD (4) matrix elements. Decoding
    # is bound by memory bandwidth, which one core only half uses, so the engine pads matrices
    # just under this size with zero columns (see ``Ops.padded_width``; not when a model runs on
    # one thread). Elsewhere the padding costs a few bytes and changes no value.
    matvec_threading_elements = 115_200 * 4

    @classmethod
    def available(cls) -> bool:
        return True

    @property
    def xp(self):
        return numpy

    def synchronize(self) -> None:
        """Work is done when the call returns on the CPU; nothing to wait for."""

    @contextmanager
    def threads(self, count: int):
        """BLAS calls made inside use ``count`` threads (at most the cores this process has).

        The setting is the BLAS library's, so it is process-wide: a runner holds it for one
        forward pass, and two models computing at the same moment share whichever was set last.
        """
        count = max(1, min(count, _cores()))
        controllers = _blas_controllers()
        before = [controller.get_num_threads() for controller in controllers]
        for controller, current in zip(controllers, before):
            if current != count:  # a few microseconds a call; most passes change nothing
                controller.set_num_threads(count)
        try:
            yield
        finally:
            for controller, current in zip(controllers, before):
                if current != count:
                    controller.set_num_threads(current)
