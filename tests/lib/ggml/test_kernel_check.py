"""The check before a kernel's first use: ollamakit's kernels are used only where they give
ggml's own products bit for bit on this machine; elsewhere the engine keeps ggml's products."""

from __future__ import annotations

import ctypes
import logging

import pytest

from ollamakit.lib.ggml import check
from ollamakit.lib.ggml import lib as L
from ollamakit.lib.ggml.native import _cpu_flags

KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@pytest.fixture(scope="module")
def library():
    library = L.load()
    if not {"avx2", "fma", "f16c"} <= _cpu_flags():
        pytest.skip("ollamakit's kernels are built for x86 CPUs with AVX2, FMA and F16C")
    assert library.kernels is not None, "run `ollamakit build-ggml` to build the kernels"
    return library


def nudged(function: int, calls: list[int]):
    """A kernel that runs ``function``, then moves its first output by one float32 unit: a
    product one rounding away from ggml's, as another CPU's or compiler's could be."""
    real = KERNEL(function)

    @KERNEL
    def kernel(dst, ith, nth, userdata):
        calls.append(ith)
        real(dst, ith, nth, userdata)
        if ith == 0:
            first = ctypes.c_uint32.from_address(L.tensor(dst).data)
            first.value += 1

    return kernel


def test_the_built_kernels_pass_and_are_checked_once(library):
    kernels = L.Kernels(library.kernels.handle, library)
    assert L.TYPE_Q4_1 in kernels.products
    for weight_type, product in list(kernels.products.items()):  # one check per kernel
        assert check.agrees(library, weight_type, product), weight_type
        assert kernels.product(weight_type) == product
        kernels.products[weight_type] = None  # asked again, the answer is the first check's
        assert kernels.product(weight_type) == product
    assert kernels.product(L.TYPE_Q4_0) is None  # no kernel of ours: ggml's product


def test_a_kernel_one_unit_off_is_not_used_and_says_so(library, caplog):
    kernels = L.Kernels(library.kernels.handle, library)
    calls: list[int] = []
    kernel = nudged(library.kernels.mul_mat_q4_1, calls)
    address = ctypes.cast(kernel, ctypes.c_void_p).value
    kernels.products[L.TYPE_Q4_1] = L.Product(L.TYPE_Q8_1, address, None)
    with caplog.at_level(logging.WARNING, logger="ollamakit.ggml"):
        assert kernels.product(L.TYPE_Q4_1) is None
    assert calls, "the check ran the kernel"
    [record] = [r for r in caplog.records if r.name == "ollamakit.ggml"]
    assert "q4_1 kernel is off" in record.getMessage()
    assert "ggml's own" in record.getMessage()
    calls.clear()
    assert kernels.product(L.TYPE_Q4_1) is None and not calls  # decided once per process


def nudged_at(function: int, width: int):
    """A kernel that runs ``function`` and, for steps of ``width`` activation rows only, moves
    its first output by one float32 unit: a body compiled for one width that parts from ggml."""
    real = KERNEL(function)

    @KERNEL
    def kernel(dst, ith, nth, userdata):
        real(dst, ith, nth, userdata)
        if ith == 0 and L.tensor(dst).ne[1] == width:
            first = ctypes.c_uint32.from_address(L.tensor(dst).data)
            first.value += 1

    return kernel


def test_every_step_width_a_kernel_takes_is_checked(library):
    """A kernel compiles a body of its own per width: one that parts from ggml only at its
    widest step, or one in between, or (taking any width) past one pass of 8 columns, is off."""
    kept = []  # the callbacks must outlive the checks that call them
    for weight_type, product in L.Kernels(library.kernels.handle, library).products.items():
        widest = product.most_rows or 9
        for width in sorted({product.fewest_rows, 3, 4, 6, widest}):
            if not product.fewest_rows <= width <= widest:
                continue
            kept.append(nudged_at(product.function, width))
            address = ctypes.cast(kept[-1], ctypes.c_void_p).value
            nudged = product._replace(function=address)
            assert not check.agrees(library, weight_type, nudged), (weight_type, width)
