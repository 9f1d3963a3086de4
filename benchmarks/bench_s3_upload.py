"""Blob uploads into the s3 storage driver: streamed as they arrive, against the two phases they
took before (received into a local file while hashed, then sent from it) and against boto3's own
``upload_fileobj``, alternating in one run on the same S3 server.

    .venv-test/bin/python benchmarks/bench_s3_upload.py [--mb 128] [--repeat 3]

Starts moto's S3 server (from the test extras, hence ``.venv-test``) on loopback, a kernel on
the ``s3`` driver in this process and one ``ollamakit serve`` on it, and times, each round in
a rotated order, the same random ``--mb`` file going into an empty place:

- ``boto3 upload_fileobj``: boto3's transfer manager (8 MiB parts, ten at a time), only sending;
- ``two phases``: the body written to a scratch file while hashed and fsynced, then
  ``put_blob`` (parts sent and hashed again), as a blob upload went before streaming;
- ``streamed``: ``ModelStore.write_blob`` through the driver's blob writer (parts sent while the
  next gathers, hashed once);
- ``POST /api/blobs``: the same through the server, over HTTP (the transport feeds the writer
  while it receives).

moto keeps objects in memory and answers in Python, so its absolute speeds are far below S3's;
what counts is each ratio. The load average is printed before and after: run it quiet.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing.fixtures import ServerProcess
from ollamakit_s3store.testing import S3Server

CHUNK = 1 << 20  # what one read of the incoming body gives


def random_file(path: Path, size_mb: int) -> str:
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            block = os.urandom(1 << 20)
            sha.update(block)
            fh.write(block)
    return "sha256:" + sha.hexdigest()


def chunks(path: Path):
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            yield block


def two_phases(storage, source: Path, digest: str) -> None:
    scratch = storage.scratch_dir() / "bench-upload"
    sha = hashlib.sha256()
    with open(scratch, "wb") as out:
        for block in chunks(source):
            out.write(block)
            sha.update(block)
        out.flush()
        os.fsync(out.fileno())
    assert "sha256:" + sha.hexdigest() == digest
    assert storage.put_blob(digest, scratch) is True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        tmp = Path(tmp)
        s3 = S3Server(tmp / "s3").start()
        server = kernel = None
        try:
            client = s3.client
            bucket = s3.new_bucket()
            env = {**s3.env(bucket), "OLLAMAKIT_STORAGE": "s3"}
            os.environ.update(env)
            kernel = make_kernel(Settings(models_dir=tmp / "in-process", storage="s3"))
            storage = kernel.storage
            (tmp / "server").mkdir()
            server = ServerProcess(tmp / "server", env).start()
            source = tmp / "upload.bin"
            digest = random_file(source, args.mb)
            key = f"blobs/sha256-{digest[7:]}"

            def boto3_upload():
                with open(source, "rb") as fh:
                    client.upload_fileobj(fh, bucket, key)

            def post():
                reply = httpx.post(
                    f"{server.url}/api/blobs/{digest}", content=chunks(source), timeout=600
                )
                assert reply.status_code == 201, reply.text

            methods = {
                "boto3 upload_fileobj": boto3_upload,
                "two phases (before)": lambda: two_phases(storage, source, digest),
                "streamed (blob writer)": lambda: kernel.store.write_blob(
                    digest, chunks(source), args.mb << 20
                ),
                "POST /api/blobs, streamed": post,
            }
            times: dict[str, list[float]] = {name: [] for name in methods}
            order = list(methods)
            for _ in range(args.repeat):
                for name in order:
                    start = time.perf_counter()
                    methods[name]()
                    times[name].append(time.perf_counter() - start)
                    client.delete_object(Bucket=bucket, Key=key)
                    storage.cache.discard(digest)  # what put_blob kept
                order = order[1:] + order[:1]
        finally:
            if server is not None:
                server.stop()
            if kernel is not None:
                kernel.close()
            s3.stop()

    mb = (args.mb << 20) / 1e6
    boto3_best = min(times["boto3 upload_fileobj"])
    two_best = min(times["two phases (before)"])
    print(
        f"{args.mb} MiB random into moto's S3 server on loopback; {args.repeat} rounds, alternating"
    )
    print(f"{'':28} {'best s':>8} {'median s':>9} {'MB/s':>6} {'x boto3':>8} {'x two phases':>13}")
    for name, values in times.items():
        best = min(values)
        print(
            f"{name:28} {best:8.2f} {statistics.median(values):9.2f} {mb / best:6.1f} "
            f"{boto3_best / best:8.2f} {two_best / best:13.2f}"
        )
    load_after = os.getloadavg()
    print(
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )


if __name__ == "__main__":
    main()
