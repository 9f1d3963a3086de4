"""Compute backend ``numpy``: the CPU reference backend.

The engine writes its architectures once against an array module; this backend supplies numpy
(float32 BLAS through whatever library numpy was built with). It always works, so ``auto``
falls back to it when no accelerator is present.
"""

from __future__ import annotations

import numpy

from ollamakit.interfaces import ComputeBackend


class NumpyBackend(ComputeBackend):
    name = "numpy"

    @classmethod
    def available(cls) -> bool:
        return True

    @property
    def xp(self):
        return numpy

    def synchronize(self) -> None:
        """Work is done when the call returns on the CPU; nothing to wait for."""
