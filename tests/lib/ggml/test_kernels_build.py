"""``ollamakit build-ggml``'s second part: ollamakit's kernels compiled for this CPU, beside ggml."""

from __future__ import annotations

import shutil

import pytest

from ollamakit.lib.ggml import lib as L
from ollamakit.lib.ggml import native


@pytest.mark.skipif(not shutil.which("cc"), reason="needs a C compiler")
def test_kernels_are_compiled_once_under_their_source_digest_and_load(tmp_path):
    built = native.build_kernels(tmp_path, log=lambda _line: None)
    assert built == tmp_path / native.kernels_name()
    assert built.name.startswith("libollamakit-kernels-") and built.stat().st_size > 0
    assert list(tmp_path.iterdir()) == [built]  # nothing half-written left beside it
    stamp = built.stat().st_mtime_ns
    assert native.build_kernels(tmp_path, log=lambda _line: None) == built
    assert built.stat().st_mtime_ns == stamp  # not compiled again

    kernels = L.Kernels.load(tmp_path)
    if not {"avx2", "fma", "f16c"} <= native._cpu_flags():
        assert kernels is None  # other CPUs keep ggml's products
    else:
        assert kernels is not None and kernels.mul_mat_q4_1


def test_kernels_are_off_when_asked_or_absent(tmp_path, monkeypatch):
    assert L.Kernels.load(tmp_path) is None  # nothing built there
    if shutil.which("cc"):
        native.build_kernels(tmp_path, log=lambda _line: None)
        monkeypatch.setenv("OLLAMAKIT_KERNELS", "0")
        assert L.Kernels.load(tmp_path) is None
