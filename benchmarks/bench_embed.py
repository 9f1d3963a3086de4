"""Embeddings per second with all-MiniLM-L6-v2: ollamakit beside sentence-transformers on the CPU.

    .venv/bin/python benchmarks/bench_embed.py [--st-python PATH] [--repeat 5]

Converts the all-MiniLM-L6-v2 safetensors folder (``ollamakit.testing.models``) to GGUF as
``/api/create`` does, then embeds the same 256 sentences three ways, best of ``--repeat``:

* the engine alone (``BertRunner.embed`` on the numpy backend, one batch of 256);
* ``POST /api/embed`` on a real ``ollamakit serve`` (one request with 256 inputs);
* sentence-transformers (torch, CPU, batch size 32, its default), run by ``--st-python``: a
  Python with ``torch`` and ``sentence-transformers`` installed, kept out of the project, e.g.

      python -m venv ~/.cache/ollamakit/bench-st-venv
      ~/.cache/ollamakit/bench-st-venv/bin/pip install torch==2.13.0 sentence-transformers

Both sides use every core. The script also reports the lowest cosine similarity between the
two implementations' vectors. Target: ollamakit ≥ 1× sentence-transformers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_ST_PYTHON = Path.home() / ".cache" / "ollamakit" / "bench-st-venv" / "bin" / "python"

SUBJECTS = [
    "The llama",
    "A small dog",
    "My neighbour's cat",
    "The old train",
    "Every river",
    "This recipe",
    "The new library",
    "Our team",
    "A quiet village",
    "The weather report",
    "That song",
    "The museum",
    "A good book",
    "The city council",
    "The mountain trail",
    "Her first painting",
]
PREDICATES = [
    "crossed the valley before sunrise.",
    "is surprisingly easy to get wrong.",
    "was mentioned in yesterday's newspaper, along with a long list of other local events.",
    "needs more time.",
    "made everyone in the room laugh for a while.",
    "depends on how carefully the measurements were taken during the first week of testing.",
    "changed everything.",
    "will open again next spring after the repairs are finished.",
    "sounds better in the morning.",
    "has been studied by scientists for more than forty years.",
    "is not what it used to be.",
    "looked different under the evening light.",
    "reminded him of a summer long ago, when the family still lived by the sea.",
    "costs less than expected.",
    "was finally approved after three rounds of discussion.",
    "kept going.",
]


def sentences(count: int = 256) -> list[str]:
    """Deterministic sentences of varied length (about 5 to 25 words)."""
    out = []
    for i in range(count):
        out.append(
            f"{SUBJECTS[i % len(SUBJECTS)]} {PREDICATES[(i * 7 + i // len(SUBJECTS)) % len(PREDICATES)]}"
        )
    return out


ST_SCRIPT = """
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
folder, repeat = sys.argv[1], int(sys.argv[2])
texts = json.load(sys.stdin)
model = SentenceTransformer(folder, device="cpu")
model.encode(texts[:32])
best, vectors = float("inf"), None
for _ in range(repeat):
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "vectors": vectors.tolist()}))
"""


def best_of(repeat: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def convert(folder: Path, out: Path) -> Path:
    from ollamakit_safetensors import ModelFolder, plan_conversion

    files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    with ModelFolder(files) as model_folder:
        plan_conversion(model_folder, "all-minilm").write(out)
    return out


def bench_engine(gguf: Path, texts: list[str], repeat: int):
    from ollamakit_engine.bert import build_bert_runner
    from ollamakit.lib.gguf.reader import GGUFFile
    from ollamakit_numpy import NumpyBackend
    from ollamakit.lib.tokenizers import load_tokenizer

    with GGUFFile.open(gguf) as file:
        runner = build_bert_runner(file, NumpyBackend(), load_tokenizer(file.metadata))
    runner.embed([runner.tokenizer.encode(t) for t in texts[:32]])  # warm up
    seconds, vectors = best_of(
        repeat, lambda: runner.embed([runner.tokenizer.encode(t) for t in texts])
    )
    tokens = sum(len(runner.tokenizer.encode(t)) for t in texts)
    return seconds, np.asarray(vectors), tokens


def bench_api(folder: Path, texts: list[str], repeat: int, tmp: Path) -> float:
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
                "/api/create", json={"model": "all-minilm", "files": files, "stream": False}
            ).raise_for_status()
            http.post(
                "/api/embed", json={"model": "all-minilm", "input": texts[:32]}
            ).raise_for_status()
            seconds, _ = best_of(
                repeat,
                lambda: http.post(
                    "/api/embed", json={"model": "all-minilm", "input": texts}
                ).raise_for_status(),
            )
    finally:
        server.stop()
    return seconds


def bench_sentence_transformers(python: Path, folder: Path, texts: list[str], repeat: int):
    if not python.exists():
        return None
    run = subprocess.run(
        [str(python), "-c", ST_SCRIPT, str(folder), str(repeat)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    from ollamakit.testing import models

    parser = argparse.ArgumentParser()
    parser.add_argument("--st-python", type=Path, default=DEFAULT_ST_PYTHON)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=256)
    args = parser.parse_args()
    folder = models.all_minilm_l6_v2()
    texts = sentences(args.count)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        engine_s, ours, tokens = bench_engine(
            convert(folder, tmp / "minilm.gguf"), texts, args.repeat
        )
        api_s = bench_api(folder, texts, args.repeat, tmp)
    n = len(texts)
    print(f"{n} sentences, {tokens} tokens (with [CLS]/[SEP]), best of {args.repeat}")
    print(f"  ollamakit engine      {n / engine_s:8.1f} sentences/s")
    print(f"  ollamakit /api/embed  {n / api_s:8.1f} sentences/s")
    st = bench_sentence_transformers(args.st_python, folder, texts, args.repeat)
    if st is None:
        print(f"  sentence-transformers not measured: no Python at {args.st_python}")
        return
    theirs = np.asarray(st["vectors"])
    similarity = (
        np.sum(ours * theirs, axis=1)
        / np.linalg.norm(ours, axis=1)
        / np.linalg.norm(theirs, axis=1)
    )
    print(
        f"  sentence-transformers {n / st['seconds']:8.1f} sentences/s (torch {st['torch']}, {st['threads']} threads)"
    )
    print(
        f"  ratio engine / sentence-transformers: {st['seconds'] / engine_s:.2f}x;"
        f" /api/embed: {st['seconds'] / api_s:.2f}x"
    )
    print(f"  lowest cosine similarity between the two: {similarity.min():.6f}")


if __name__ == "__main__":
    main()
