"""Pull throughput beside a plain download of the same blob, in the same run.

A 250 MB model (one random model layer and a config) is pushed to a local ``docker-registry``;
then, alternately, ``curl`` downloads the model blob to a file and ``pull_model`` pulls the
whole model into an empty store (fetch, sha256 check, commit, manifest). Target: pull >= 0.6x
curl's throughput.

    .venv/bin/python benchmarks/bench_pull.py [--mb 250] [--runs 3]

Needs ``/usr/bin/docker-registry`` (``apt-get install docker-registry``) and ``curl``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit_registry import pull_model, push_model
from ollamakit_registry.testing import LocalRegistry


def make_model(kernel, name: str, megabytes: int) -> str:
    """A model whose layer is ``megabytes`` MB of random bytes; returns the layer digest."""
    store = kernel.store
    temp = store.scratch_file()
    with open(temp, "wb") as fh:
        for _ in range(megabytes):
            fh.write(os.urandom(1000 * 1000))
    digest, size = store.add_file(temp)
    config_digest, config_size = store.add_bytes(json.dumps({"model_format": "gguf", "architecture": "amd64", "os": "linux"}).encode())
    manifest = mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size), [mf.Layer(mf.MODEL, digest, size)])
    from ollamakit.names import ModelName

    store.write_manifest(ModelName.parse(name), manifest)
    return digest


def curl_seconds(url: str, target: Path) -> float:
    out = subprocess.run(["curl", "-sS", "-f", "-o", str(target), "-w", "%{time_total}", url], check=True, capture_output=True, text=True)
    target.unlink()
    return float(out.stdout)


def pull_seconds(root: Path, name: str) -> float:
    models = root / "pull-models"
    shutil.rmtree(models, ignore_errors=True)
    kernel = make_kernel(Settings(models_dir=models))
    start = time.perf_counter()
    for event in pull_model(kernel, name, insecure=True):
        pass
    elapsed = time.perf_counter() - start
    kernel.close()
    shutil.rmtree(models, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=250)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        root = Path(tmp)
        with LocalRegistry(root / "registry") as registry:
            name = f"{registry.host}/library/bench:latest"
            source = make_kernel(Settings(models_dir=root / "source"))
            digest = make_model(source, name, args.mb)
            for _ in push_model(source, name, insecure=True):
                pass
            shutil.rmtree(root / "source")
            size = args.mb * 1000 * 1000
            blob_url = f"{registry.url}/v2/library/bench/blobs/{digest}"
            curl, pull = [], []
            for _ in range(args.runs):
                curl.append(curl_seconds(blob_url, root / "curl.bin"))
                pull.append(pull_seconds(root, name))
        curl_rate = size / statistics.median(curl) / 1e6
        pull_rate = size / statistics.median(pull) / 1e6
        print(f"blob: {args.mb} MB, {args.runs} runs each, median")
        print(f"curl download : {curl_rate:7.1f} MB/s  ({', '.join(f'{t:.2f}s' for t in curl)})")
        print(f"ollamakit pull: {pull_rate:7.1f} MB/s  ({', '.join(f'{t:.2f}s' for t in pull)})")
        ratio = pull_rate / curl_rate
        print(f"ratio         : {ratio:.2f}x (target >= 0.6x) {'OK' if ratio >= 0.6 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
