"""The long fuzz run: GGUF files, safetensors files, PyTorch checkpoints, request bodies and
model-folder configs, cases per second per
target and every finding.

    .venv-test/bin/python benchmarks/bench_fuzz.py [--cases 100000] [--seed 1] [--targets gguf,safetensors,torch-checkpoint,requests,configs]
                                                  [--json findings.json]

The targets and their rule are those of the test suite's short run (``tests/fuzz``): every case
is a parse, an answer or a clean 4xx (no 5xx, escaped exception, traceback, class name or path
in a message, no case over 5 s, no growth of the peak resident memory past 1 GiB). ``--cases``
is the total, shared between the targets by ``SHARE``; each target runs in chunks of
``CHUNK`` cases, each chunk a fresh hypothesis run from its own seed (one long run would keep
every case's choices in memory). Findings are grouped by signature (the same bug found again)
and printed with their first case. Exits 1 when there is a finding.

Cases per second are given against wall time and against this process's CPU time: on a shared
machine the second says what the harness costs, the first what the machine gave it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fuzz"))

from fuzz_configs import ConfigTarget  # noqa: E402
from fuzz_requests import RequestTarget  # noqa: E402
from fuzz_targets import (  # noqa: E402
    GGUFTarget,
    SafetensorsTarget,
    TorchCheckpointTarget,
    fuzz,
    peak_memory,
)

TARGETS = {
    "gguf": GGUFTarget,
    "safetensors": SafetensorsTarget,
    "torch-checkpoint": TorchCheckpointTarget,
    "requests": RequestTarget,
    "configs": ConfigTarget,
}
SHARE = {
    "gguf": 0.3,
    "safetensors": 0.2,
    "torch-checkpoint": 0.1,
    "requests": 0.3,
    "configs": 0.1,
}
CHUNK = 2000


def run_target(name: str, cases: int, seed: int, findings: dict) -> dict:
    target = TARGETS[name]()
    ran, wall, cpu = 0, time.perf_counter(), time.process_time()

    def found(finding):
        group = findings.setdefault(finding.signature(), {"count": 0, "first": finding})
        group["count"] += 1
        if group["count"] == 1:  # a long run shows each new finding at once
            print(
                f"  new finding [{name}] {finding.kind}: {finding.detail[:200]}",
                file=sys.stderr,
                flush=True,
            )

    try:
        chunk = 0
        while ran < cases:
            ran += fuzz(target, min(CHUNK, cases - ran), seed * 1_000_003 + chunk, found)
            chunk += 1
            elapsed = time.perf_counter() - wall
            print(f"  {name}: {ran} cases, {ran / elapsed:.0f}/s", file=sys.stderr, flush=True)
    finally:
        target.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "target": name,
        "cases": ran,
        "seconds": round(wall, 1),
        "per_second": round(ran / wall),
        "per_cpu_second": round(ran / max(cpu, 1e-9)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="total cases over every target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--json", help="write the results and findings here")
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    share = sum(SHARE[n] for n in names)
    findings: dict = {}
    results = [
        run_target(n, round(args.cases * SHARE[n] / share), args.seed, findings) for n in names
    ]

    print(f"{'target':<12} {'cases':>8} {'seconds':>8} {'cases/s':>8} {'cases/cpu-s':>12}")
    for r in results:
        print(
            f"{r['target']:<12} {r['cases']:>8} {r['seconds']:>8} {r['per_second']:>8} {r['per_cpu_second']:>12}"
        )
    total = sum(r["cases"] for r in results)
    print(f"{'total':<12} {total:>8}   peak resident memory {peak_memory() >> 20} MiB")
    print(f"findings: {len(findings)} distinct, {sum(g['count'] for g in findings.values())} cases")
    for signature, group in sorted(findings.items()):
        first = group["first"]
        print(
            f"- [{first.target}] {first.kind} x{group['count']}: {first.detail}\n    case: {first.case}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": results,
                    "findings": [
                        {
                            "signature": s,
                            "count": g["count"],
                            "kind": g["first"].kind,
                            "target": g["first"].target,
                            "detail": g["first"].detail,
                            "case": g["first"].case,
                        }
                        for s, g in findings.items()
                    ],
                },
                indent=1,
            )
        )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
