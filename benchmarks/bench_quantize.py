"""Quantizing a real model to each of the fourteen types, beside llama.cpp's quantizer in the same run.

The source is SmolLM2-135M-Instruct as F16 (its Q4_1 tensors dequantized, cached under
~/.cache/ollamakit). For every type, ``quantize_file`` and llama.cpp's ``llama_model_quantize``
(through llama-cpp-python) quantize it with the same number of threads; the table shows wall
and CPU seconds for each, their ratio (target: ours <= 3x llama.cpp), and how the outputs compare:
tensors byte-identical to llama.cpp's, and otherwise the worst relative RMS difference of the
decoded tensors.

Wall-clock time swings with whatever else the machine runs, so CPU seconds are printed too (both
quantizers run in this process, so its CPU time is theirs).

    .venv/bin/python benchmarks/bench_quantize.py [--threads 1] [--types q4_K_M q8_0 ...] [--json out.json]

Needs llama-cpp-python for the comparison; without it only our times are shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "plugins" / "quant"))

import quant_reference  # noqa: E402

from ollamakit.lib.gguf import GGUFFile  # noqa: E402
from ollamakit_quant.quantizer import quantize_file  # noqa: E402
from ollamakit_quant.recipe import FILE_TYPES  # noqa: E402


def timed(work):
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(ours: Path, theirs: Path) -> tuple[int, int, float]:
    """(identical tensors, all tensors, worst relative RMS difference of the others)."""
    same, worst = 0, 0.0
    with GGUFFile.open(ours) as a, GGUFFile.open(theirs) as b:
        for t in b.tensors:
            if a.tensor_info(t.name).ggml_type == t.ggml_type and np.array_equal(
                a.raw(t.name), b.raw(t.name)
            ):
                same += 1
                continue
            x, y = a.tensor(t.name), b.tensor(t.name)
            worst = max(worst, float(np.sqrt(np.mean((x - y) ** 2) / max(np.mean(y**2), 1e-30))))
        return same, len(b.tensors), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--types", nargs="*", default=list(FILE_TYPES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    source = quant_reference.smollm2_f16()
    have_reference = quant_reference.available()
    rows = []
    print(f"source: {source.name} ({source.stat().st_size / 1e6:.0f} MB), threads: {args.threads}")
    print(
        f"{'type':8} {'ours s':>8} {'cpu':>7} {'llama.cpp s':>11} {'cpu':>7} {'wall x':>7} {'cpu x':>6}  identical"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name in args.types:
            ours, theirs = Path(folder) / "ours.gguf", Path(folder) / "theirs.gguf"
            our_wall, our_cpu = timed(
                lambda: quantize_file(source, ours, name, threads=args.threads)
            )
            row = {"type": name, "ours_s": our_wall, "ours_cpu_s": our_cpu}
            if have_reference:
                ref_wall, ref_cpu = timed(
                    lambda: quant_reference.reference_file(
                        source, theirs, name, threads=args.threads
                    )
                )
                same, total, worst = compare(ours, theirs)
                row.update(
                    llama_cpp_s=ref_wall,
                    llama_cpp_cpu_s=ref_cpu,
                    identical=same,
                    tensors=total,
                    worst_relative_rms=worst,
                )
                print(
                    f"{name:8} {our_wall:8.2f} {our_cpu:7.2f} {ref_wall:11.2f} {ref_cpu:7.2f} "
                    f"{our_wall / ref_wall:7.2f} {our_cpu / ref_cpu:6.2f}  {same}/{total}"
                    + (f" (worst rel. RMS {worst:.2e})" if same != total else ""),
                    flush=True,
                )
            else:
                print(f"{name:8} {our_wall:8.2f} {our_cpu:7.2f}", flush=True)
            rows.append(row)
    if have_reference:
        wall = sum(r["ours_s"] for r in rows) / sum(r["llama_cpp_s"] for r in rows)
        cpu = sum(r["ours_cpu_s"] for r in rows) / sum(r["llama_cpp_cpu_s"] for r in rows)
        print(f"all types: {wall:.2f}x llama.cpp wall time, {cpu:.2f}x its CPU time (target <= 3x)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
