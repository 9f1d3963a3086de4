"""Weight buffers on transparent huge pages: ``Tensors.allocate(huge_pages=True)`` advises the
kernel before anything is written, so the buffer's whole 2 MiB runs are faulted in as huge pages
(Linux records the advice as the ``hg`` flag of the mapping)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ollamakit.lib.ggml import graph
from ollamakit.lib.ggml import lib as L
from ollamakit.lib.ggml.graph import HUGE_PAGE, Tensors, advise_huge_pages, array

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def vm_flags(address: int) -> set[str]:
    """The ``VmFlags`` of this process's mapping that holds ``address``."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                start, stop = (int(part, 16) for part in head.split("-"))
                inside = start <= address < stop
            elif inside and head == "VmFlags:":
                return set(line.split()[1:])
    raise LookupError(f"no mapping holds {address:#x}")


@pytest.fixture(scope="module")
def library():
    if not sys.platform.startswith("linux") or not THP.exists() or "[never]" in THP.read_text():
        pytest.skip("transparent huge pages are not available here")
    return L.load()


def test_a_buffer_asked_for_huge_pages_is_advised(library):
    tensors = Tensors(library, 1)
    values = 6 * HUGE_PAGE // 4
    tensor = tensors.new(L.TYPE_F32, values)
    tensors.allocate(huge_pages=True)
    try:
        data = L.tensor(tensor).data
        array(tensor, L.TYPE_F32, (values,))[...] = 1.0
        middle = data + 3 * HUGE_PAGE  # inside a whole 2 MiB run, whatever the buffer's start
        assert "hg" in vm_flags(middle)
        assert float(array(tensor, L.TYPE_F32, (values,)).sum()) == values
    finally:
        tensors.close()


def test_a_buffer_not_asked_is_not_advised(library, monkeypatch):
    # Asked through the advice itself, not the mapping's flag: in a long process the allocator
    # may hand back memory that an earlier buffer had advised and freed, flag and all.
    advised = []
    monkeypatch.setattr(graph, "advise_huge_pages", lambda *args: advised.append(args))
    tensors = Tensors(library, 1)
    tensor = tensors.new(L.TYPE_F32, 6 * HUGE_PAGE // 4)
    tensors.allocate(huge_pages=False)
    try:
        array(tensor, L.TYPE_F32, (6 * HUGE_PAGE // 4,))[...] = 1.0
    finally:
        tensors.close()
    assert advised == []


def test_too_small_a_range_is_left_alone(library):
    assert not advise_huge_pages(HUGE_PAGE + 4096, HUGE_PAGE)  # no whole 2 MiB run inside
