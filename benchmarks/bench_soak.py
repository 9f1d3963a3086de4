"""Soak: many clients for a long time against a real ``ollamakit serve`` with SmolLM2, once with
the default number of parallel slots and once with one, side by side.

    .venv-test/bin/python benchmarks/bench_soak.py                      # 64 clients, 10 min each
    .venv-test/bin/python benchmarks/bench_soak.py --duration 150 --json soak.json

Each configuration starts its own server (``OLLAMA_NUM_PARALLEL`` unset, then ``1``) on a fresh
model folder, creates SmolLM2-135M (Q4_1, from the package registry, cached by
``ollamakit.testing.models``) through ``/api/blobs`` and ``/api/create`` and loads it. Then
``--clients`` threads, each with its own keep-alive connection, send requests one after another
for ``--duration`` seconds: generate and chat, streamed or not, 8 to 64 tokens each, one request
in ten an ``/api/tags``; and one more thread polls ``/api/tags`` twice a second throughout.

Reported per configuration: completed requests and generated tokens per second, request latency
p50/p95, errors by kind (only the documented 503 "server busy" is allowed), the server's
resident memory after the first minute and at the end (the end must be within 5% of the first),
and the ``/api/tags`` p95 (must be under 100 ms). Exits 1 when a check fails.

Timings swing on a shared machine: run it when nothing else runs, and say when that was not so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ollamakit.testing import models
from ollamakit.testing.processes import free_port, stop_process, wait_for_port

BUSY = "server busy, please try again.  maximum pending requests exceeded"
QUESTIONS = [
    "Why is the sky blue?",
    "Name three fruits.",
    "What is 12 times 7?",
    "Write a haiku about rain.",
    "What is the capital of France?",
    "Explain recursion in one sentence.",
    "Give me a synonym for fast.",
    "How many legs does a spider have?",
    "What colour is grass?",
    "Say hello in Spanish.",
]
SYSTEM = "You are a concise assistant."
GRACE = 30.0  # seconds a request in flight at the end may take to finish; then it is cut
MEMORY_DRIFT = 0.05
TAGS_P95_LIMIT = 0.100


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(self, folder: Path, parallel: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(folder / "models"),
            "OLLAMA_KEEP_ALIVE": "-1",
        }
        env.pop("OLLAMA_NUM_PARALLEL", None)
        if parallel != "auto":
            env["OLLAMA_NUM_PARALLEL"] = parallel
        (folder / "models").mkdir(parents=True)
        self.log_path = folder / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ollamakit", "serve"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(
            self.proc, self.port, 60, lambda: RuntimeError(f"server exited; see {self.log_path}")
        )

    def create_smollm2(self) -> None:
        path = models.smollm2_q4_1()
        data = path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with httpx.Client(base_url=self.url, timeout=600) as http:
            http.post(f"/api/blobs/{digest}", content=data).raise_for_status()
            http.post(
                "/api/create",
                json={
                    "model": "smol",
                    "files": {"smol.gguf": digest},
                    "system": SYSTEM,
                    "stream": False,
                },
            ).raise_for_status()
            http.post("/api/generate", json={"model": "smol", "keep_alive": -1}).raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class Soak:
    def __init__(self, url: str, clients: int, duration: float, seed: int):
        self.url, self.clients, self.duration, self.seed = url, clients, duration, seed
        self.requests: list[tuple[str, float, float, int]] = []  # kind, end, latency, tokens
        self.errors: dict[str, int] = {}
        self.tags: list[float] = []
        self.lock = threading.Lock()

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def one_request(self, http: httpx.Client, rng: random.Random) -> None:
        if rng.random() < 0.1:
            self.poll_tags(http)
            return
        stream = rng.random() < 0.5
        options = {
            "num_predict": rng.choice([8, 16, 32, 64]),
            "temperature": 0.7,
            "seed": rng.randrange(1 << 30),
        }
        if rng.random() < 0.5:
            kind, path = "generate", "/api/generate"
            body = {
                "model": "smol",
                "prompt": rng.choice(QUESTIONS),
                "stream": stream,
                "options": options,
            }
        else:
            kind, path = "chat", "/api/chat"
            turns = [
                {"role": "user", "content": q} for q in rng.sample(QUESTIONS, rng.randint(1, 3))
            ]
            history = []
            for turn in turns[:-1]:
                history += [turn, {"role": "assistant", "content": "I see."}]
            body = {
                "model": "smol",
                "messages": history + turns[-1:],
                "stream": stream,
                "options": options,
            }
        started = time.monotonic()
        tokens, status = 0, 0
        # Past the end, a request in flight gets GRACE seconds (for a reply, or between the lines
        # of a streamed one); then it is cut, and counted neither as done nor as an error.
        timeout = httpx.Timeout(max(5.0, self.end + GRACE - started))
        try:
            with http.stream("POST", path, json=body, timeout=timeout) as reply:
                status = reply.status_code
                lines = []
                for line in reply.iter_lines():
                    if time.monotonic() > self.end + GRACE:
                        return
                    if line.strip():
                        lines.append(json.loads(line))
        except httpx.HTTPError as exc:
            if time.monotonic() < self.end:
                self.error(type(exc).__name__)
            return
        except ValueError:
            self.error("invalid JSON in reply")
            return
        if status != 200:
            message = lines[0].get("error", "") if lines else ""
            self.error(
                "503 busy" if status == 503 and message == BUSY else f"{status} {message[:60]}"
            )
            return
        final = lines[-1] if lines else {}
        if not final.get("done") or any("error" in line for line in lines):
            self.error("reply without done or with an error")
            return
        tokens = int(final.get("eval_count", 0))
        ended = time.monotonic()
        with self.lock:
            self.requests.append((kind, ended, ended - started, tokens))

    def poll_tags(self, http: httpx.Client) -> None:
        started = time.monotonic()
        try:
            reply = http.get("/api/tags")
        except httpx.HTTPError as exc:
            self.error(f"tags {type(exc).__name__}")
            return
        latency = time.monotonic() - started
        if reply.status_code != 200 or not any(
            m["name"] == "smol:latest" for m in reply.json().get("models", [])
        ):
            self.error(f"tags {reply.status_code}")
            return
        with self.lock:
            self.tags.append(latency)

    def client(self, index: int, stop: threading.Event) -> None:
        rng = random.Random(self.seed * 1000 + index)
        with httpx.Client(base_url=self.url, timeout=900) as http:
            while not stop.is_set():
                self.one_request(http, rng)

    def tag_poller(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not stop.wait(0.5):
                self.poll_tags(http)

    def run(self, pid: int) -> dict:
        stop = threading.Event()
        threads = [
            threading.Thread(target=self.client, args=(i, stop), daemon=True)
            for i in range(self.clients)
        ]
        threads.append(threading.Thread(target=self.tag_poller, args=(stop,), daemon=True))
        self.start = time.monotonic()
        self.end = self.start + self.duration
        for thread in threads:
            thread.start()
        memory_after_minute = None
        while time.monotonic() < self.end:
            time.sleep(1)
            if memory_after_minute is None and time.monotonic() - self.start >= min(
                60, self.duration / 2
            ):
                memory_after_minute = resident_bytes(pid)
                print(
                    f"  resident memory after {time.monotonic() - self.start:.0f} s: "
                    f"{memory_after_minute / 2**20:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        memory_end = resident_bytes(pid)
        stop.set()
        for (
            thread
        ) in threads:  # requests in flight finish (or are cut); they count if they end in time
            thread.join(timeout=GRACE + 30)
        return self.summary(memory_after_minute or memory_end, memory_end)

    def summary(self, memory_first: int, memory_end: int) -> dict:
        window = [r for r in self.requests if r[1] - self.start <= self.duration]
        latencies = [r[2] for r in window]
        drift = (memory_end - memory_first) / memory_first
        tags_p95 = percentile(self.tags, 0.95)
        allowed = {k: v for k, v in self.errors.items() if k == "503 busy"}
        return {
            "requests": len(window),
            "requests_per_second": round(len(window) / self.duration, 2),
            "tokens_per_second": round(sum(r[3] for r in window) / self.duration, 1),
            "latency_p50_s": round(percentile(latencies, 0.5), 2),
            "latency_p95_s": round(percentile(latencies, 0.95), 2),
            "errors": self.errors,
            "memory_first_minute_mib": round(memory_first / 2**20, 1),
            "memory_end_mib": round(memory_end / 2**20, 1),
            "memory_drift": round(drift, 4),
            "tags_polls": len(self.tags),
            "tags_p50_ms": round(percentile(self.tags, 0.5) * 1000, 1),
            "tags_p95_ms": round(tags_p95 * 1000, 1),
            "ok": (self.errors == allowed)
            and abs(drift) <= MEMORY_DRIFT
            and tags_p95 < TAGS_P95_LIMIT,
        }


def soak(parallel: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="ollamakit-soak-") as folder:
        server = Server(Path(folder), parallel)
        try:
            server.create_smollm2()
            print(
                f"OLLAMA_NUM_PARALLEL={parallel}: {args.clients} clients for {args.duration:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            result = Soak(server.url, args.clients, args.duration, args.seed).run(server.proc.pid)
        except BaseException:
            print(server.log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            server.stop()
    return {"parallel": parallel, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds per configuration")
    parser.add_argument(
        "--configs", default="auto,1", help="OLLAMA_NUM_PARALLEL values to run ('auto': unset)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    print(
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr
    )
    results = [soak(parallel, args) for parallel in args.configs.split(",")]
    keys = [
        "requests",
        "requests_per_second",
        "tokens_per_second",
        "latency_p50_s",
        "latency_p95_s",
        "memory_first_minute_mib",
        "memory_end_mib",
        "memory_drift",
        "tags_polls",
        "tags_p50_ms",
        "tags_p95_ms",
        "errors",
        "ok",
    ]
    print(f"{'':<26}" + "".join(f"{'parallel ' + r['parallel']:>22}" for r in results))
    for key in keys:
        print(f"{key:<26}" + "".join(f"{json.dumps(r[key]):>22}" for r in results))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
