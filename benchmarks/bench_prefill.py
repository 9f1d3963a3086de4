"""Prefill beside llama.cpp, in rounds: each engine loads the model once in a process of its own,
then each round times one prompt in each engine, in turns (the order swapped every round), and
prints both rates, their ratio and the load average. The two figures of a round are seconds apart,
so they saw the same machine; on a busy one read the median ratio, not the rates.

    .venv/bin/python benchmarks/bench_prefill.py --models gemma3,qwen --prompt 512 --rounds 8

Same engines and settings as ``bench_engine.py`` (its ``Ours`` and ``LlamaCpp``: our ggml
engine with --threads, llama-cpp-python with n_batch 512, flash attention, float16 cache), same
random prompt; each engine answers the prompt once before the first round (pages the weights in
and builds what a first step builds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from bench_engine import MARGIN, LlamaCpp, Ours, cpu_summary

ENGINES = {"ours": Ours, "llama.cpp": LlamaCpp}


def serve(args) -> None:
    """A worker: load, answer the prompt once, then time one prefill per line read."""
    prompt = [int(t) for t in np.random.default_rng(1).integers(200, 20000, args.prompt)]
    engine = ENGINES[args.worker](args.path, args.threads, args.prompt + MARGIN)
    engine.feed(engine.begin(), prompt)
    print("ready", flush=True)
    for _ in sys.stdin:
        seq = engine.begin()
        start = time.perf_counter()
        engine.feed(seq, prompt)
        print(args.prompt / (time.perf_counter() - start), flush=True)


def start(engine: str, path, args) -> subprocess.Popen:
    command = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--path", str(path)]
    command += ["--prompt", str(args.prompt), "--threads", str(args.threads)]
    worker = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{engine} did not load {path}")
    return worker


def prefill(worker: subprocess.Popen) -> float:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def rounds(name: str, path, args) -> None:
    workers = {engine: start(engine, path, args) for engine in ENGINES}
    try:
        print(f"\n{name}: {path.name}, {args.prompt}-token prompt, {args.threads} threads each")
        print(f"  {'round':>5}{'ollamakit':>11}{'llama.cpp':>11}{'ratio':>8}  load average")
        ratios = []
        for round_ in range(args.rounds):
            order = list(workers) if round_ % 2 == 0 else list(workers)[::-1]
            rates = {engine: prefill(workers[engine]) for engine in order}
            ratios.append(rates["ours"] / rates["llama.cpp"])
            print(
                f"  {round_ + 1:>5}{rates['ours']:11.1f}{rates['llama.cpp']:11.1f}"
                f"{ratios[-1]:7.2f}x  {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        print(f"  median ratio {float(np.median(ratios)):.2f}x over {len(ratios)} rounds")
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="gemma3", help="comma-separated: smollm2, gemma3, qwen")
    parser.add_argument("--prompt", type=int, default=512, help="tokens of the prompt")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="each engine's threads")
    parser.add_argument("--worker", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        serve(args)
        return

    from ollamakit.testing import models

    catalog = {
        "smollm2": models.smollm2_q4_1,
        "gemma3": models.gemma3_270m,
        "qwen": models.qwen25_coder_1_5b,
    }
    print(f"CPU: {cpu_summary()}")
    for name in args.models.split(","):
        rounds(name, catalog[name](), args)


if __name__ == "__main__":
    main()
