"""What the metrics cost per generated token, beside a decode step, on SmolLM2-135M (Q4_1).

    .venv/bin/python benchmarks/bench_metrics.py [--repeat 5] [--tokens 64]

Two real servers on one model folder, one with metrics (the default) and one with
``OLLAMAKIT_METRICS=0``, each asked the same greedy generate in turn, ``--repeat`` times:

* the decode step: the replies' ``eval_duration / eval_count`` (median);
* the metrics' own work for one request, timed directly in this process over many runs: the
  request observer's hook call (``on_request_done``), the answer's report (``on_inference_done``,
  with the first-token check a streamed piece makes), spread over the request's tokens;
* as a check, each server's wall time per request (median), metrics on over off.

Target: the metrics' work per token under 1% of a decode step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ollamakit.config import Settings
from ollamakit.events import Metrics
from ollamakit.inference.answer import Report
from ollamakit.kernel import make_kernel
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.smollm2 import create_smollm2

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def observer_cost(tokens: int, runs: int = 20000) -> float:
    """Seconds of metrics work for one request of ``tokens`` generated tokens."""
    with tempfile.TemporaryDirectory() as folder:
        kernel = make_kernel(Settings(models_dir=Path(folder)))
        model = type("Model", (), {"short_name": "smol:latest"})()
        done = Metrics(prompt_eval_count=20, eval_count=tokens, eval_duration=tokens * 10**7)
        started = time.perf_counter()
        for _ in range(runs):
            kernel.observe(
                kernel.hook.on_request_done,
                method="POST",
                route="/api/generate",
                status=200,
                seconds=0.5,
            )
            report = Report(kernel, model, "generate", time.perf_counter_ns())
            for _ in range(tokens):  # the check each streamed piece makes
                if report.first_token is None:
                    report.first_token = time.perf_counter_ns()
            report.done(done)
        kernel.close()
        return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as root:
        models = Path(root) / "models"
        models.mkdir()
        base = {"OLLAMA_NOPRUNE": "1", "OLLAMA_KEEP_ALIVE": "-1"}
        on = ServerProcess(models, base).start()
        off = ServerProcess(models, {**base, "OLLAMAKIT_METRICS": "0"}).start()
        try:
            create_smollm2(on.url, ["smol"])
            body = {
                "model": "smol",
                "prompt": PROMPT,
                "stream": False,
                "options": {"temperature": 0, "num_predict": args.tokens, "seed": 1},
            }
            steps, walls = [], {"on": [], "off": []}
            with httpx.Client(timeout=600) as client:
                for server in (on, off):  # load both, then measure
                    client.post(f"{server.url}/api/generate", json=body).raise_for_status()
                for turn in range(args.repeat):  # alternating which goes first
                    pair = (("on", on), ("off", off))
                    for label, server in pair if turn % 2 == 0 else pair[::-1]:
                        start = time.perf_counter()
                        reply = client.post(f"{server.url}/api/generate", json=body).json()
                        walls[label].append(time.perf_counter() - start)
                        steps.append(reply["eval_duration"] / 1e9 / reply["eval_count"])
                tokens = reply["eval_count"]
        finally:
            on.stop()
            off.stop()
    step = statistics.median(steps)
    per_token = observer_cost(tokens) / tokens
    ratio = statistics.median(walls["on"]) / statistics.median(walls["off"])
    print(f"load average {load:.1f}; {tokens} tokens a request, {args.repeat} requests a server")
    print(f"decode step (median)              {step * 1e3:8.3f} ms")
    print(f"metrics work per token            {per_token * 1e6:8.3f} us")
    print(f"  share of a decode step          {per_token / step * 100:8.4f} %")
    print(f"wall time a request, on / off     {ratio:8.3f}")
    sys.exit(0 if per_token < 0.01 * step else 1)


if __name__ == "__main__":
    main()
