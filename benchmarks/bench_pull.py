"""Pull throughput beside a plain download of the same blob, in the same run.

A 250 MB model (one random model layer and a config) is pushed to a local ``docker-registry``;
then, alternately, ``curl`` downloads the model blob to a file and ``pull_model`` pulls the
whole model into an empty store (fetch, sha256 check, commit, manifest). Target: pull >= 0.6x
curl's throughput.

Wall-clock rates swing with whatever else the machine runs, so the CPU seconds each side used
are printed too: pull's CPU time is curl's work plus the sha256 pass, the part that does not
depend on the neighbours.

    .venv/bin/python benchmarks/bench_pull.py [--mb 250] [--runs 3]

Needs ``/usr/bin/docker-registry`` (``apt-get install docker-registry``) and ``curl``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    config_digest, config_size = store.add_bytes(
        json.dumps({"model_format": "gguf", "architecture": "amd64", "os": "linux"}).encode()
    )
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size),
        [mf.Layer(mf.MODEL, digest, size)],
    )
    from ollamakit.names import ModelName

    store.write_manifest(ModelName.parse(name), manifest)
    return digest


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def curl_seconds(url: str, target: Path) -> tuple[float, float]:
    """(wall, cpu) seconds for curl to download ``url`` to a file."""
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["curl", "-sS", "-f", "-o", str(target), "-w", "%{time_total}", url],
        check=True,
        capture_output=True,
        text=True,
    )
    target.unlink()
    return float(out.stdout), cpu_seconds(resource.RUSAGE_CHILDREN) - before


def pull_seconds(root: Path, name: str) -> tuple[float, float]:
    """(wall, cpu) seconds to pull ``name`` into an empty store."""
    models = root / "pull-models"
    shutil.rmtree(models, ignore_errors=True)
    kernel = make_kernel(Settings(models_dir=models))
    before, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    for event in pull_model(kernel, name, insecure=True):
        pass
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - before
    kernel.close()
    shutil.rmtree(models, ignore_errors=True)
    return elapsed, cpu


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
        curl_rate = size / statistics.median(t for t, _ in curl) / 1e6
        pull_rate = size / statistics.median(t for t, _ in pull) / 1e6
        print(
            f"blob: {args.mb} MB, {args.runs} runs each, median; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        for label, rate, runs in (
            ("curl download ", curl_rate, curl),
            ("ollamakit pull", pull_rate, pull),
        ):
            walls = ", ".join(f"{t:.2f}s" for t, _ in runs)
            print(
                f"{label}: {rate:7.1f} MB/s  wall {walls}; CPU median {statistics.median(c for _, c in runs):.2f}s"
            )
        ratio = pull_rate / curl_rate
        print(
            f"ratio         : {ratio:.2f}x (target >= 0.6x) {'OK' if ratio >= 0.6 else 'BELOW TARGET'}"
        )


if __name__ == "__main__":
    main()
