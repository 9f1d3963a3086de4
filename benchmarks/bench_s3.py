"""The s3 storage driver's three speeds, each beside boto3 on the same S3 server and the fs
driver on the same disk, in one run.

    .venv-test/bin/python benchmarks/bench_s3.py [--mb 250] [--model PATH] [--repeat 3]

Starts moto's S3 server (from the test extras, hence ``.venv-test``) on loopback, one
``ollamakit serve`` on the ``s3`` driver and one on ``fs``, and measures:

1. **Upload**: ``POST /api/blobs`` of a random ``--mb`` file through the s3 server (received,
   hashed, sent to the bucket in parts), beside boto3's own ``upload_file`` of the same file to
   the same server (its transfer manager: 8 MiB parts, ten at a time), and the fs server's
   upload. Target: >= 0.5x boto3.
2. **First load** of a model (``--model``, Gemma 3 270M by default, 253 MB) through an empty
   cache: ``/api/generate`` with no prompt (what ``ollama run`` sends to load) on a fresh s3
   server, which fills its cache from the bucket and then loads; beside boto3's
   ``download_file`` of the same blob. Target: >= 0.5x the download's speed (the load takes at
   most twice the download's time).
3. **Second load** of the same model on the same s3 server after it is unloaded (from its cache),
   beside the same load on the fs server. Target: the fs driver's speed.

moto keeps objects in memory and answers in Python, so the bucket here is slower than S3 on a
network; both sides of each comparison use it. The machine's load skews every figure: run it
quiet, under ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import httpx

from ollamakit.testing import models as real_models
from ollamakit.testing.fixtures import ServerProcess
from ollamakit_s3store.testing import S3Server


def random_file(path: Path, size_mb: int) -> str:
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            block = os.urandom(1 << 20)
            sha.update(block)
            fh.write(block)
    return "sha256:" + sha.hexdigest()


def digest_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def chunks(path: Path, size: int = 1 << 20):
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield block


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def upload(server: ServerProcess, path: Path, digest: str) -> None:
    reply = httpx.post(f"{server.url}/api/blobs/{digest}", content=chunks(path), timeout=600)
    assert reply.status_code == 201, reply.text


def load(server: ServerProcess, name: str) -> None:
    reply = httpx.post(
        f"{server.url}/api/generate", json={"model": name, "stream": False}, timeout=600
    )
    assert reply.status_code == 200 and reply.json()["done_reason"] == "load", reply.text


def unload(server: ServerProcess, name: str) -> None:
    reply = httpx.post(
        f"{server.url}/api/generate",
        json={"model": name, "keep_alive": 0, "stream": False},
        timeout=600,
    )
    assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/api/ps").json()["models"]:
        assert time.monotonic() < deadline, "the model did not unload"
        time.sleep(0.05)


def create(server: ServerProcess, name: str, model: Path, digest: str) -> None:
    upload(server, model, digest)
    reply = httpx.post(
        f"{server.url}/api/create",
        json={"model": name, "files": {"m.gguf": digest}, "stream": False},
        timeout=600,
    )
    assert reply.status_code == 200, reply.text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=250)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    model = args.model or real_models.gemma3_270m()
    model_digest = digest_file(model)
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        tmp = Path(tmp)
        s3 = S3Server(tmp / "s3").start()
        servers = []
        try:
            client = s3.client
            bucket = s3.new_bucket()
            env = {**s3.env(bucket), "OLLAMAKIT_STORAGE": "s3"}

            def serve(label: str, **extra) -> ServerProcess:
                (tmp / label).mkdir()
                servers.append(ServerProcess(tmp / label, {**env, **extra}).start())
                return servers[-1]

            writer, fs = serve("writer"), serve("fs", OLLAMAKIT_STORAGE="fs")
            source = tmp / "upload.bin"
            digest = random_file(source, args.mb)
            size = source.stat().st_size

            # 1. uploads, alternating, each into an empty place
            ours, theirs, local = [], [], []
            for attempt in range(args.repeat):
                theirs.append(
                    timed(lambda: client.upload_file(str(source), bucket, f"boto3/{attempt}"))
                )
                client.delete_object(Bucket=bucket, Key=f"boto3/{attempt}")
                ours.append(timed(lambda: upload(writer, source, digest)))
                client.delete_object(Bucket=bucket, Key=f"blobs/sha256-{digest[7:]}")
                (tmp / "writer" / "blobs" / f"sha256-{digest[7:]}").unlink()
                local.append(timed(lambda: upload(fs, source, digest)))
                (tmp / "fs" / "blobs" / f"sha256-{digest[7:]}").unlink()

            # 2. and 3. loads: the model goes into the bucket through the writer, and into fs
            create(writer, "bench", model, model_digest)
            create(fs, "bench", model, model_digest)
            load(
                fs, "bench"
            )  # the fs server's first load: its second loads are what s3's are set beside
            unload(fs, "bench")
            model_size = model.stat().st_size
            key = f"blobs/sha256-{model_digest[7:]}"
            downloads, first, second, fs_loads = [], [], [], []
            for attempt in range(args.repeat):
                target = tmp / "download.bin"
                downloads.append(timed(lambda: client.download_file(bucket, key, str(target))))
                target.unlink()
                reader = serve(f"reader{attempt}")  # a replica that has never run it: empty cache
                first.append(timed(lambda: load(reader, "bench")))
                unload(reader, "bench")
                second.append(timed(lambda: load(reader, "bench")))
                unload(reader, "bench")
                reader.stop()
                fs_loads.append(timed(lambda: load(fs, "bench")))
                unload(fs, "bench")
        finally:
            for server in servers:
                server.stop()
            s3.stop()

    mb, model_mb = size / 1e6, model_size / 1e6
    print(f"s3 driver against moto on loopback, best of {args.repeat}")
    print(f"upload, {mb:.0f} MB random")
    print(f"  boto3 upload_file                  {mb / min(theirs):8.0f} MB/s")
    print(
        f"  POST /api/blobs, s3 driver         {mb / min(ours):8.0f} MB/s   "
        f"({min(theirs) / min(ours):.2f}x boto3; target >= 0.5x)"
    )
    print(f"  POST /api/blobs, fs driver         {mb / min(local):8.0f} MB/s")
    print(f"first load, {model.name} ({model_mb:.0f} MB), empty cache")
    print(
        f"  boto3 download_file                {min(downloads):8.2f} s    {model_mb / min(downloads):6.0f} MB/s"
    )
    print(
        f"  load through the s3 driver         {min(first):8.2f} s    {model_mb / min(first):6.0f} MB/s   "
        f"({min(downloads) / min(first):.2f}x the download; target >= 0.5x)"
    )
    print("second load (from the cache)")
    print(f"  load, fs driver                    {min(fs_loads):8.2f} s")
    print(
        f"  load, s3 driver                    {min(second):8.2f} s    "
        f"({min(fs_loads) / min(second):.2f}x the fs driver's speed; target 1x)"
    )
    print(f"  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
