"""Reranking 100 documents: ollamakit beside sentence-transformers' CrossEncoder on the CPU.

    .venv/bin/python benchmarks/bench_rerank.py [--st-python PATH] [--repeat 5] [--count 100]
                                                [--per-core]

A random cross-encoder of ms-marco-MiniLM-L6-v2's shape (``ollamakit.testing.encoders``,
``MINILM_CROSS_SHAPE``: width 384, 6 layers, all-MiniLM's tokenizer) is written as a
``BertForSequenceClassification`` folder and converted as ``/api/create`` does. One query is then
scored against the same ``--count`` documents by each contender, in ``--repeat`` rounds; each
round runs every contender once, in turn, so a busy neighbour slows them alike; best of the
rounds:

* the engine alone on ggml, the backend ``auto`` picks (the pairs as the inference service makes
  them, ``BertRunner.embed``: the graph, with ollamakit's float32 kernels where the CPU has
  AVX-512);
* the engine alone on numpy (the portable float32 engine);
* ``POST /v1/rerank`` on a real ``ollamakit serve`` (one request; ``auto``, so ggml);
* ``CrossEncoder.predict`` (torch, CPU, batch size 32, its default), in a process of its own run
  by ``--st-python``: a Python with ``torch`` and ``sentence-transformers``, kept out of the
  project (see ``bench_embed.py``).

It prints the load average before and after, and the largest difference between the engines'
scores and CrossEncoder's. Target: ollamakit >= 1x CrossEncoder. ``--per-core`` gives every
contender one thread (ggml's pool, OpenBLAS, torch) and times it in CPU seconds
(``time.process_time``), which busy neighbours disturb far less than wall time; the server is
then left out (its CPU time is another process's).
"""

from __future__ import annotations

import os
import sys

if "--per-core" in sys.argv:  # numpy's BLAS takes its thread count when it loads
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from bench_embed import DEFAULT_ST_PYTHON, convert, sentences  # noqa: E402

QUERY = "Which of these happened in the morning, and who was there?"

ST_SCRIPT = """
import json, sys, time
import torch
from sentence_transformers import CrossEncoder
folder, per_core = sys.argv[1], sys.argv[2] == "per-core"
if per_core:
    torch.set_num_threads(1)
clock = time.process_time if per_core else time.perf_counter
query, documents = json.loads(sys.stdin.readline())
model = CrossEncoder(folder, device="cpu")
pairs = [(query, d) for d in documents]
model.predict(pairs[:32], activation_fn=torch.nn.Identity())
print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
for line in sys.stdin:  # one round per line
    start = clock()
    scores = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity())
    seconds = clock() - start
    print(json.dumps({"seconds": seconds, "scores": [float(s) for s in scores]}), flush=True)
"""


class CrossEncoderProcess:
    """sentence-transformers in its own Python, scoring the pairs once per ``round()``."""

    def __init__(self, python: Path, folder: Path, documents: list[str], per_core: bool):
        self.process = subprocess.Popen(
            [str(python), "-c", ST_SCRIPT, str(folder), "per-core" if per_core else "all"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.process.stdin.write(json.dumps([QUERY, documents]) + "\n")
        self.process.stdin.flush()
        self.about = json.loads(self.process.stdout.readline())

    def round(self) -> tuple[float, list[float]]:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["seconds"], answer["scores"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def engine(gguf: Path, documents: list[str], backend, options: dict):
    """A function scoring the documents on the engine alone, on ``backend``."""
    from ollamakit.inference.rerank import pair_tokens
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.lib.tokenizers import load_tokenizer
    from ollamakit_engine.bert import build_bert_runner

    with GGUFFile.open(gguf) as file:
        runner = build_bert_runner(file, backend, load_tokenizer(file.metadata), options)
    tokenizer = runner.tokenizer

    def scores():
        query = tokenizer.encode(QUERY, add_special=False, parse_special=True)
        pairs = [
            pair_tokens(
                tokenizer,
                query,
                tokenizer.encode(d, add_special=False, parse_special=True),
                512,
                True,
            )
            for d in documents
        ]
        return [
            float(v[0])
            for v in runner.embed([i for i, _ in pairs], token_types=[t for _, t in pairs])
        ]

    scores()  # warm up
    return scores


class RerankServer:
    """A real ``ollamakit serve`` with the reranker created from its folder."""

    def __init__(self, folder: Path, documents: list[str], tmp: Path):
        import hashlib

        import httpx

        from ollamakit.testing.fixtures import ServerProcess

        (tmp / "models").mkdir()
        self.server = ServerProcess(tmp / "models").start()
        self.http = httpx.Client(base_url=self.server.url, timeout=600)
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            self.http.post(f"/api/blobs/{digest}", content=data).raise_for_status()
            files[str(path.relative_to(folder))] = digest
        self.http.post(
            "/api/create", json={"model": "reranker", "files": files, "stream": False}
        ).raise_for_status()
        self.body = {"model": "reranker", "query": QUERY, "documents": documents}
        self.http.post("/v1/rerank", json={**self.body, "documents": documents[:32]})

    def scores(self) -> list[float]:
        reply = self.http.post("/v1/rerank", json=self.body).raise_for_status().json()
        return [r["relevance_score"] for r in sorted(reply["results"], key=lambda r: r["index"])]

    def close(self) -> None:
        self.http.close()
        self.server.stop()


def timed(work, clock) -> tuple[float, object]:
    start = clock()
    result = work()
    return clock() - start, result


def main() -> None:
    from ollamakit.testing.encoders import MINILM_CROSS_SHAPE, tiny_cross_encoder
    from ollamakit_ggml import GgmlBackend
    from ollamakit_numpy import NumpyBackend

    parser = argparse.ArgumentParser()
    parser.add_argument("--st-python", type=Path, default=DEFAULT_ST_PYTHON)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument(
        "--per-core",
        action="store_true",
        help="one thread each, timed in CPU seconds (steadier than wall time on a busy machine)",
    )
    args = parser.parse_args()
    clock = time.process_time if args.per_core else time.perf_counter
    unit = "documents per CPU-second" if args.per_core else "documents/s"
    options = {"num_thread": 1} if args.per_core else {}
    documents = sentences(args.count)
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    best: dict[str, float] = {}
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tiny_cross_encoder(tmp / "cross", shape=MINILM_CROSS_SHAPE)
        gguf = convert(folder, tmp / "cross.gguf")
        contenders = {
            "engine (ggml)": engine(gguf, documents, GgmlBackend(), options),
            "engine (numpy)": engine(gguf, documents, NumpyBackend(), options),
        }
        # a server's CPU time is another process's: only measured by the clock on the wall
        server = None if args.per_core else RerankServer(folder, documents, tmp)
        if server is not None:
            contenders["/v1/rerank"] = server.scores
        st = (
            CrossEncoderProcess(args.st_python, folder, documents, args.per_core)
            if args.st_python.exists()
            else None
        )
        if st is not None:
            contenders["CrossEncoder"] = st.round
        try:
            for _ in range(args.repeat):
                for name, work in contenders.items():
                    if name == "CrossEncoder":
                        seconds, result = work()
                    else:
                        seconds, result = timed(work, clock)
                    if seconds < best.get(name, float("inf")):
                        best[name] = seconds
                    scores[name] = result
        finally:
            if server is not None:
                server.close()
            if st is not None:
                st.close()
    n = len(documents)
    how = ", one thread each, CPU time" if args.per_core else ""
    print(f"one query, {n} documents, best of {args.repeat} alternating rounds{how}")
    for name, seconds in best.items():
        extra = ""
        if name == "CrossEncoder":
            extra = f" (torch {st.about['torch']}, {st.about['threads']} threads)"
        print(f"  {name:16s} {n / seconds:8.1f} {unit}{extra}")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if st is None:
        print(f"  CrossEncoder not measured: no Python at {args.st_python}")
        return
    reference = np.asarray(scores["CrossEncoder"])
    for name in best:
        if name != "CrossEncoder":
            ratio = best["CrossEncoder"] / best[name]
            gap = np.max(np.abs(np.asarray(scores[name]) - reference))
            print(f"  {name} / CrossEncoder: {ratio:.2f}x, largest score difference {gap:.2e}")


if __name__ == "__main__":
    main()
