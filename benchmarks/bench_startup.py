"""CLI start-up: the wall-clock time of ``ollamakit --help``, beside ``python -c pass``.

``--help`` loads every plugin (each ``ollamakit.plugins`` entry point) and builds the command
group, which every command does before it runs; a plugin that imports numpy, falcon or jinja2 at
module level is paid for here. Each command runs in a fresh process, ``--runs`` times
alternately with the interpreter alone; the best run of each is printed, the interpreter's as
the floor no CLI can go under. Target: ``ollamakit --help`` under 0.3 s.

    .venv/bin/python benchmarks/bench_startup.py [--runs 10]

It times the ``ollamakit`` script of the environment that runs it. ``-X importtime`` shows
where the time goes:

    .venv/bin/python -X importtime -c "from ollamakit.cli import build_cli; build_cli()"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def elapsed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    script = Path(sys.executable).parent / "ollamakit"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "ollamakit"]
    floor_cmd = [sys.executable, "-c", "pass"]
    subprocess.run(
        cli + ["--help"], check=True, stdout=subprocess.DEVNULL
    )  # warm the file cache and .pyc files
    # alternate the two, so that a busy moment costs both sides alike
    cli_best, floor_best = float("inf"), float("inf")
    for _ in range(args.runs):
        cli_best = min(cli_best, elapsed(cli + ["--help"]))
        floor_best = min(floor_best, elapsed(floor_cmd))

    print(f"load average {os.getloadavg()[0]:.2f}, best of {args.runs}")
    print(
        f"{'ollamakit --help':<20} {cli_best:6.3f} s   target < {TARGET_S:.1f} s: {'met' if cli_best < TARGET_S else 'MISSED'}"
    )
    print(f"{'python -c pass':<20} {floor_best:6.3f} s   (the floor)")
    print(f"{'ollamakit itself':<20} {cli_best - floor_best:6.3f} s   (above the floor)")


if __name__ == "__main__":
    main()
