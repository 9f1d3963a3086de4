"""Compute backend ``cuda``: the engine's kernels on an NVIDIA GPU through CuPy.

The engine is written against an array module, so this backend only has to hand it ``cupy``:
weights are uploaded once at load, activations and caches live on the device, and logits come
back to the host per step. ``available()`` is false (and ``auto`` picks ``numpy``) when CuPy is
not installed or no device is visible. Install with ``pip install cupy-cuda12x``.
"""

from __future__ import annotations

from ollamakit.interfaces import ComputeBackend


def _cupy():
    import cupy  # an optional dependency: imported only when this backend is used

    return cupy


class CudaBackend(ComputeBackend):
    name = "cuda"

    def __init__(self, kernel=None, device: int = 0):
        super().__init__(kernel)
        self.device = device
        if not self.available():
            raise RuntimeError("the cuda compute backend needs CuPy and a visible CUDA device")
        _cupy().cuda.Device(device).use()

    @classmethod
    def available(cls) -> bool:
        try:
            return _cupy().cuda.runtime.getDeviceCount() > 0
        except Exception:  # no CuPy, no driver, no device: all mean "not here"
            return False

    @property
    def xp(self):
        return _cupy()

    def asarray(self, array):
        return _cupy().asarray(array)

    def to_numpy(self, array):
        return _cupy().asnumpy(array)

    def synchronize(self) -> None:
        _cupy().cuda.Stream.null.synchronize()

    def memory_info(self) -> tuple[int, int]:
        """(free, total) bytes of device memory, for the scheduler's budget."""
        return _cupy().cuda.runtime.memGetInfo()

    def accelerator_memory(self) -> int:
        return int(self.memory_info()[1])
