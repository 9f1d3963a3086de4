"""A small Pythonic layer over ggml's graph API: contexts, tensors in buffers, one graph a step.

``Tensors`` places tensors in memory ggml does not own (a memory-mapped file) or in a buffer it
allocates (a cache). ``Step`` is the scratch context of one graph: the engine adds operations
(``step.op("mul_mat", a, b)`` calls ``ggml_mul_mat(ctx, a, b)``), marks inputs, and ``Compute``
allocates the intermediates, copies the inputs in, runs the graph on a thread pool and reads the
outputs back. Tensors are plain pointers (ints).
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading

import numpy as np

from . import lib as L

NUMPY_TYPES = {
    L.TYPE_F32: np.float32,
    L.TYPE_F16: np.float16,
    L.TYPE_I32: np.int32,
    L.TYPE_I64: np.int64,
}
GGML_TYPES = {np.dtype(dtype): ggml_type for ggml_type, dtype in NUMPY_TYPES.items()}


class Tensors:
    """A ggml context of tensor descriptions, whose data lives in a backend buffer.

    ``mapped`` wraps memory the caller keeps alive (``place`` puts each tensor at an address in
    it); ``allocate`` gives every tensor its own fresh memory in one buffer."""

    def __init__(self, lib, count: int):
        self.lib = lib
        params = L.InitParams(count * lib.ggml_tensor_overhead() + 1024, None, True)
        self.ctx = lib.ggml_init(params)
        if not self.ctx:
            raise MemoryError("ggml could not make a context")
        self.buffer: int | None = None  # a ggml_backend_buffer_t, once mapped or allocated

    def new(self, ggml_type: int, *shape: int, name: str | None = None) -> int:
        """A tensor of ``shape`` (ggml order, 1 to 4 dimensions)."""
        if not 1 <= len(shape) <= L.MAX_DIMS:
            raise ValueError(f"ggml tensors have 1 to {L.MAX_DIMS} dimensions, not {len(shape)}")
        tensor = self.lib.ggml_new_tensor(
            self.ctx, ggml_type, len(shape), (L.I64 * len(shape))(*shape)
        )
        if name:
            self.lib.ggml_set_name(tensor, name.encode()[: L.MAX_NAME - 1])
        return tensor

    def map(self, address: int, size: int) -> None:
        """Back the tensors with ``size`` bytes at ``address`` (not copied, never written)."""
        self.buffer = self.lib.ggml_backend_cpu_buffer_from_ptr(address, size)

    def place(self, tensor: int, address: int) -> None:
        if self.lib.ggml_backend_tensor_alloc(self.buffer, tensor, address) != 0:
            raise ValueError("ggml refused a tensor's address")

    def allocate(self, buffer_type: int | None = None, huge_pages: bool = False) -> int:
        """Memory for every tensor of the context, in one buffer (of the CPU's plain type unless
        told); returns its size in bytes. With ``huge_pages``, the buffer asks the kernel for
        transparent huge pages before anything is written to it (``advise_huge_pages``)."""
        buffer_type = buffer_type or self.lib.ggml_backend_cpu_buffer_type()
        self.buffer = self.lib.ggml_backend_alloc_ctx_tensors_from_buft(self.ctx, buffer_type)
        if not self.buffer:
            raise MemoryError("ggml could not allocate a buffer")
        size = self.lib.ggml_backend_buffer_get_size(self.buffer)
        if huge_pages:
            advise_huge_pages(self.lib.ggml_backend_buffer_get_base(self.buffer), size)
        return size

    def close(self) -> None:
        if self.buffer:
            self.lib.ggml_backend_buffer_free(self.buffer)
            self.buffer = None
        if self.ctx:
            self.lib.ggml_free(self.ctx)
            self.ctx = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


HUGE_PAGE = 2 << 20  # x86-64's and arm64's usual transparent huge page
MADV_HUGEPAGE = 14  # linux/mman.h


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def advise_huge_pages(address: int, size: int) -> bool:
    """Ask Linux to back ``size`` bytes of fresh memory at ``address`` with transparent huge
    pages as they are first touched (``madvise(MADV_HUGEPAGE)``; the whole 2 MiB runs inside
    it). The machine's default is often "madvise": without the advice, a weight buffer of a
    gigabyte is 4 KiB pages, and a decode step that streams through it misses the TLB on every
    page (each miss a two-level walk in a virtual machine). Returns whether the kernel took the
    advice; False, harmlessly, where it cannot (not Linux, huge pages off, too small)."""
    if not sys.platform.startswith("linux"):
        return False
    start = -(-address // HUGE_PAGE) * HUGE_PAGE
    stop = (address + size) // HUGE_PAGE * HUGE_PAGE
    if stop <= start:
        return False
    madvise = _libc().madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise(start, stop - start, MADV_HUGEPAGE) == 0


def array(tensor: int, ggml_type: int, shape: tuple[int, ...]) -> np.ndarray:
    """A numpy view of a contiguous tensor's memory, in row-major order (reversed ne)."""
    data = L.tensor(tensor).data
    count = int(np.prod(shape))
    dtype = np.dtype(NUMPY_TYPES[ggml_type])
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(data)
    return np.frombuffer(memoryview(buffer), dtype=dtype).reshape(shape)


class Step:
    """The operations of one graph, and the host arrays its inputs take before it runs."""

    def __init__(self, lib, nodes: int, arena: ctypes.Array | None = None):
        self.lib = lib
        if arena is None:  # a graph of its own, kept to be run again
            arena = ctypes.create_string_buffer(arena_bytes(lib, nodes))
        self.arena = arena
        self.allocator: int | None = None  # set for a graph kept with its own intermediates
        self.ctx = lib.ggml_init(L.InitParams(ctypes.sizeof(arena), ctypes.addressof(arena), True))
        self.graph = lib.ggml_new_graph_custom(self.ctx, nodes, False)
        self.inputs: list[tuple[int, np.ndarray]] = []
        self.named: dict[str, int] = {}

    def op(self, name: str, *args):
        return getattr(self.lib, "ggml_" + name)(self.ctx, *args)

    def input(
        self, values: np.ndarray, ggml_type: int | None = None, name: str | None = None
    ) -> int:
        """A tensor the step reads, shaped as ``values`` (row-major) and filled from them before
        the graph runs; ``name`` lets a reused graph take new values (``refill``)."""
        ggml_type = GGML_TYPES[np.asarray(values).dtype] if ggml_type is None else ggml_type
        values = np.ascontiguousarray(values, dtype=NUMPY_TYPES[ggml_type])
        shape = values.shape[::-1] or (1,)
        if len(shape) > L.MAX_DIMS:
            raise ValueError(f"ggml tensors have 1 to {L.MAX_DIMS} dimensions, not {len(shape)}")
        tensor = self.lib.ggml_new_tensor(
            self.ctx, ggml_type, len(shape), (L.I64 * len(shape))(*shape)
        )
        self.lib.ggml_set_input(tensor)
        self.inputs.append((tensor, values))
        if name is not None:
            self.named[name] = len(self.inputs) - 1
        return tensor

    def refill(self, values: dict[str, np.ndarray]) -> None:
        """New values for the named inputs of a graph built before (same shapes)."""
        for name, array in values.items():
            index = self.named[name]
            tensor, old = self.inputs[index]
            self.inputs[index] = (
                tensor,
                np.ascontiguousarray(array, dtype=old.dtype).reshape(old.shape),
            )

    def expand(self, tensor: int) -> int:
        """Add ``tensor`` and what it needs to the graph now: nodes run in the order added."""
        self.lib.ggml_build_forward_expand(self.graph, tensor)
        return tensor

    def output(self, tensor: int) -> int:
        self.lib.ggml_set_output(tensor)
        return self.expand(tensor)

    def close(self) -> None:
        if self.allocator:
            self.lib.ggml_gallocr_free(self.allocator)
            self.allocator = None
        if self.ctx:
            self.lib.ggml_free(self.ctx)
            self.ctx = None


def arena_bytes(lib, nodes: int) -> int:
    """Room for the tensors and the graph of a step of at most ``nodes`` nodes."""
    return nodes * lib.ggml_tensor_overhead() + lib.ggml_graph_overhead_custom(nodes, False) + 4096


_pool_locks: dict[int, threading.Lock] = {}
_pool_locks_lock = threading.Lock()


def pool_lock(threadpool: int) -> threading.Lock:
    """The lock of one ggml thread pool. A pool runs one graph at a time (it holds the current
    graph and plan), and models share pools, so two models' steps take turns on it."""
    with _pool_locks_lock:
        return _pool_locks.setdefault(threadpool, threading.Lock())


class Compute:
    """Runs steps on ggml's CPU backend: one graph allocator (its buffer grows to the largest
    step and is reused), a thread pool shared with other models (``pool_lock``), and the work
    buffer of ggml's kernels.

    The work buffer is this class's own, aligned to a cache line. ggml's CPU backend would
    allocate it with ``new[]``, which for a buffer this large (glibc maps it) gives an address
    16 bytes past a page boundary: flash attention keeps its tiles there (the query block, the
    scores and the running sums that its AVX-512 loops read and write), and the products pack
    their activations there, so every 64-byte access then straddles two cache lines. Measured
    on a SigLIP block: 11% more CPU time for flash attention's share of the work, the same
    results bit for bit (``performance.md``)."""

    WORK_ALIGNMENT = 64  # a cache line, the width of an AVX-512 register

    def __init__(self, lib, threadpool: int, threads: int):
        self.lib = lib
        self.allocator = lib.ggml_gallocr_new(lib.ggml_backend_cpu_buffer_type())
        self.arena: ctypes.Array[ctypes.c_char] | None = None  # the scratch memory of step()
        self._work = np.empty(0, np.uint8)  # the kernels' work buffer, with room to align it
        self._abort = L.ABORT_CALLBACK()  # kept alive while ggml may call it; null: none
        self.set_threads(threadpool, threads)

    def set_threads(self, threadpool: int, threads: int) -> None:
        self.threadpool, self.threads = threadpool, threads
        self._pool_lock = pool_lock(threadpool)

    def set_abort(self, should_stop) -> None:
        """``should_stop()`` is asked between the nodes of the graphs run from now on; True
        stops the graph (``run`` raises ``StepAborted``). None asks nothing: a call into Python
        per node costs a few percent of a short step."""
        self._abort = (
            L.ABORT_CALLBACK()
            if should_stop is None
            else L.ABORT_CALLBACK(lambda _data: bool(should_stop()))
        )

    def _work_data(self, size: int) -> int:
        """The address of at least ``size`` bytes of work memory, on a cache line."""
        if self._work.nbytes < size + self.WORK_ALIGNMENT:
            self._work = np.empty(size + self.WORK_ALIGNMENT, np.uint8)
        address = self._work.ctypes.data
        return address + (-address) % self.WORK_ALIGNMENT

    def step(self, nodes: int) -> Step:
        """A step to run once, in the shared arena (valid until the next ``step``)."""
        size = arena_bytes(self.lib, nodes)
        if self.arena is None or ctypes.sizeof(self.arena) < size:
            self.arena = ctypes.create_string_buffer(size)
        return Step(self.lib, nodes, self.arena)

    def keep(self, step: Step) -> None:
        """Give ``step`` intermediates of its own, so it can be run again and again (after a
        ``refill``) without being built or allocated anew."""
        step.allocator = self.lib.ggml_gallocr_new(self.lib.ggml_backend_cpu_buffer_type())
        if not self.lib.ggml_gallocr_alloc_graph(step.allocator, step.graph):
            raise MemoryError("ggml could not allocate the step's buffers")

    def run(self, step: Step) -> None:
        lib = self.lib
        if step.allocator is None and not lib.ggml_gallocr_alloc_graph(self.allocator, step.graph):
            raise MemoryError("ggml could not allocate the step's buffers")
        for tensor, values in step.inputs:
            lib.ggml_backend_tensor_set(tensor, values.ctypes.data, 0, values.nbytes)
        plan = lib.ggml_graph_plan(step.graph, self.threads, self.threadpool)
        plan.work_data = self._work_data(plan.work_size) if plan.work_size else None
        plan.abort_callback = self._abort
        with self._pool_lock:
            status = lib.ggml_graph_compute(step.graph, ctypes.byref(plan))
        if status != 0:
            raise StepAborted(f"ggml stopped the graph (status {status})")

    def read(self, tensor: int, rows: int, width: int) -> np.ndarray:
        out = np.empty((rows, width), np.float32)
        self.lib.ggml_backend_tensor_get(tensor, out.ctypes.data, 0, out.nbytes)
        return out

    def close(self) -> None:
        if self.allocator:
            self.lib.ggml_gallocr_free(self.allocator)
            self.allocator = None


class StepAborted(RuntimeError):
    """A graph stopped before its end (its abort callback said so)."""
