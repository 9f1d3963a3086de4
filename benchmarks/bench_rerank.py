"""Reranking 100 documents: ollamakit beside sentence-transformers' CrossEncoder on the CPU.

    .venv/bin/python benchmarks/bench_rerank.py [--st-python PATH] [--repeat 5] [--count 100]

A random cross-encoder of ms-marco-MiniLM-L6-v2's shape (``ollamakit.testing.encoders``,
``MINILM_CROSS_SHAPE``: width 384, 6 layers, all-MiniLM's tokenizer) is written as a
``BertForSequenceClassification`` folder and converted as ``/api/create`` does. One query is then
scored against the same ``--count`` documents, best of ``--repeat``:

* the engine alone (the pairs as the inference service makes them, ``BertRunner.embed`` on numpy);
* ``POST /v1/rerank`` on a real ``ollamakit serve`` (one request);
* ``CrossEncoder.predict`` (torch, CPU, batch size 32, its default), run by ``--st-python``: a
  Python with ``torch`` and ``sentence-transformers``, kept out of the project (see
  ``bench_embed.py``).

It also prints the largest difference between the two implementations' scores. Target:
ollamakit >= 1x CrossEncoder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_embed import DEFAULT_ST_PYTHON, best_of, convert, sentences  # noqa: E402

QUERY = "Which of these happened in the morning, and who was there?"

ST_SCRIPT = """
import json, sys, time
import torch
from sentence_transformers import CrossEncoder
folder, repeat = sys.argv[1], int(sys.argv[2])
query, documents = json.load(sys.stdin)
model = CrossEncoder(folder, device="cpu")
pairs = [(query, d) for d in documents]
model.predict(pairs[:32], activation_fn=torch.nn.Identity())
best, scores = float("inf"), None
for _ in range(repeat):
    start = time.perf_counter()
    scores = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity())
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "scores": [float(s) for s in scores]}))
"""


def bench_engine(gguf: Path, documents: list[str], repeat: int):
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.lib.tokenizers import load_tokenizer
    from ollamakit_engine.bert import build_bert_runner
    from ollamakit_numpy import NumpyBackend
    from ollamakit.inference.rerank import pair_tokens

    with GGUFFile.open(gguf) as file:
        runner = build_bert_runner(file, NumpyBackend(), load_tokenizer(file.metadata))
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
    return best_of(repeat, scores)


def bench_api(folder: Path, documents: list[str], repeat: int, tmp: Path) -> float:
    import hashlib

    import httpx

    from ollamakit.testing.fixtures import ServerProcess

    (tmp / "models").mkdir()
    server = ServerProcess(tmp / "models").start()
    try:
        with httpx.Client(base_url=server.url, timeout=600) as http:
            files = {}
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                data = path.read_bytes()
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                http.post(f"/api/blobs/{digest}", content=data).raise_for_status()
                files[str(path.relative_to(folder))] = digest
            http.post(
                "/api/create", json={"model": "reranker", "files": files, "stream": False}
            ).raise_for_status()
            body = {"model": "reranker", "query": QUERY, "documents": documents}
            http.post("/v1/rerank", json={**body, "documents": documents[:32]}).raise_for_status()
            seconds, _ = best_of(
                repeat, lambda: http.post("/v1/rerank", json=body).raise_for_status()
            )
    finally:
        server.stop()
    return seconds


def main() -> None:
    from ollamakit.testing.encoders import MINILM_CROSS_SHAPE, tiny_cross_encoder

    parser = argparse.ArgumentParser()
    parser.add_argument("--st-python", type=Path, default=DEFAULT_ST_PYTHON)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    documents = sentences(args.count)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tiny_cross_encoder(tmp / "cross", shape=MINILM_CROSS_SHAPE)
        engine_s, ours = bench_engine(convert(folder, tmp / "cross.gguf"), documents, args.repeat)
        api_s = bench_api(folder, documents, args.repeat, tmp)
        st = None
        if args.st_python.exists():
            run = subprocess.run(
                [str(args.st_python), "-c", ST_SCRIPT, str(folder), str(args.repeat)],
                input=json.dumps([QUERY, documents]),
                capture_output=True,
                text=True,
                check=True,
            )
            st = json.loads(run.stdout.strip().splitlines()[-1])
    n = len(documents)
    print(f"one query, {n} documents, best of {args.repeat}")
    print(f"  ollamakit engine      {n / engine_s:8.1f} documents/s")
    print(f"  ollamakit /v1/rerank  {n / api_s:8.1f} documents/s")
    if st is None:
        print(f"  CrossEncoder not measured: no Python at {args.st_python}")
        return
    print(
        f"  CrossEncoder          {n / st['seconds']:8.1f} documents/s (torch {st['torch']}, {st['threads']} threads)"
    )
    print(
        f"  ratio engine / CrossEncoder: {st['seconds'] / engine_s:.2f}x; /v1/rerank: {st['seconds'] / api_s:.2f}x"
    )
    print(
        f"  largest score difference: {np.max(np.abs(np.asarray(ours) - np.asarray(st['scores']))):.2e}"
    )


if __name__ == "__main__":
    main()
