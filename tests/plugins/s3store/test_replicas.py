"""Three ``ollamakit serve`` replicas on one bucket behind HAProxy, on loopback, as
docs/replicas.md deploys them: a model made through one answers through the others, racing
creates, copies and deletes of the same names never leave a manifest over a missing blob, a
replica killed mid-upload is routed around and leaves nothing behind, and a pull through one
replica serves them all."""

from __future__ import annotations

import hashlib
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ollamakit import manifest as mf
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.leftovers import check_models_answer
from ollamakit_s3store.testing import Balancer, requires_haproxy

pytestmark = pytest.mark.slow

NAMES = ("alpha", "beta", "gamma")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Cluster:
    def __init__(self, s3_server, folder):
        self.s3 = s3_server
        self.folder = folder
        self.bucket = s3_server.new_bucket()
        self.env = {**s3_server.env(self.bucket), "OLLAMAKIT_STORAGE": "s3"}
        self.replicas = [self.start_replica(i) for i in range(3)]
        self.balancer = Balancer(
            folder / "haproxy", [("127.0.0.1", r.port) for r in self.replicas]
        ).start()
        self.http = httpx.Client(base_url=self.balancer.url, timeout=120)

    def start_replica(self, index: int, port: int | None = None, **env) -> ServerProcess:
        models = self.folder / f"replica{index}"
        models.mkdir(exist_ok=True)
        server = ServerProcess(models, {**self.env, **env})
        if port is not None:
            server.port, server.url = port, f"http://127.0.0.1:{port}"
            server.env["OLLAMA_HOST"] = f"127.0.0.1:{port}"
        return server.start()

    def direct(self, index: int) -> httpx.Client:
        return httpx.Client(base_url=self.replicas[index].url, timeout=120)

    def manifests(self) -> dict[str, tuple[str, bytes]]:
        found = {}
        for page in self.s3.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="manifests/"
        ):
            for item in page.get("Contents", []):
                try:
                    response = self.s3.client.get_object(Bucket=self.bucket, Key=item["Key"])
                except self.s3.client.exceptions.NoSuchKey:
                    continue
                found[item["Key"]] = (response["ETag"], response["Body"].read())
        return found

    def blob_exists(self, digest: str) -> bool:
        try:
            self.s3.client.head_object(Bucket=self.bucket, Key=f"blobs/sha256-{digest[7:]}")
            return True
        except Exception:
            return False

    def check_bucket(self) -> int:
        """Every manifest in the bucket parses and every blob it names is there."""
        manifests = self.manifests()
        for key, (_, data) in manifests.items():
            for digest in mf.Manifest.parse(data).digests():
                assert self.blob_exists(digest), f"{key} names missing blob {digest}"
        return len(manifests)

    def close(self) -> None:
        self.http.close()
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    requires_haproxy()
    cluster = Cluster(s3_server, tmp_path_factory.mktemp("replicas"))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tiny_llama(
        tmp_path_factory.mktemp("weights") / "tiny.gguf",
        n_layers=1,
        n_embd=32,
        n_heads=2,
        n_kv_heads=1,
        n_ff=64,
    )
    return path.read_bytes()


def upload(http: httpx.Client, data: bytes) -> str:
    digest = digest_of(data)
    if http.head(f"/api/blobs/{digest}").status_code != 200:
        assert http.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    return digest


def create(http: httpx.Client, name: str, digest: str, **extra) -> httpx.Response:
    return http.post(
        "/api/create", json={"model": name, "files": {"m.gguf": digest}, "stream": False, **extra}
    )


def test_a_model_made_through_one_replica_answers_through_the_others(cluster, weights):
    with cluster.direct(0) as first:
        reply = create(first, "made-on-0", upload(first, weights), system="Be brief.")
        assert reply.status_code == 200, reply.text
    for index in (1, 2):
        with cluster.direct(index) as other:
            assert "made-on-0:latest" in [
                m["name"] for m in other.get("/api/tags").json()["models"]
            ]
            reply = other.post(
                "/api/generate",
                json={
                    "model": "made-on-0",
                    "prompt": "hi",
                    "stream": False,
                    "options": {"num_predict": 2, "temperature": 0},
                },
            )
            assert reply.status_code == 200 and reply.json()["done"], reply.text
            # each replica runs it from its own cache, filled from the bucket, and has the file
            # mapped while the model is loaded: what keeps the cache from evicting it
            cached = (
                cluster.replicas[index].models_dir / "blobs" / f"sha256-{digest_of(weights)[7:]}"
            ).resolve()
            assert cached.read_bytes() == weights
            assert str(cached) in Path(f"/proc/{cluster.replicas[index].proc.pid}/maps").read_text()
            ps = other.get("/api/ps").json()["models"]
            assert [m["name"] for m in ps] == ["made-on-0:latest"]  # /api/ps is per replica
    with cluster.direct(0) as first:
        assert first.get("/api/ps").json()["models"] == []
        assert (
            first.request("DELETE", "/api/delete", json={"model": "made-on-0"}).status_code == 200
        )


def test_racing_creates_copies_and_deletes_leave_every_manifest_whole(cluster, weights):
    upload(cluster.http, weights)  # in the bucket before the first create
    violations, stop = [], threading.Event()

    def watch():
        """While the operations run: a manifest that, unchanged, names a missing blob."""
        while not stop.is_set():
            for key, (etag, data) in cluster.manifests().items():
                for blob in mf.Manifest.parse(data).digests():
                    if not cluster.blob_exists(blob):
                        still = cluster.manifests().get(key)
                        if still and still[0] == etag:
                            violations.append((key, blob))

    def operation(seed: int) -> tuple[str, int, str]:
        rng = random.Random(seed)
        kind, name = rng.choice(("create", "create", "copy", "delete")), rng.choice(NAMES)
        with cluster.direct(seed % 3) as http:  # spread evenly, whatever the balancer's turn
            if kind == "create":
                reply = create(
                    http, name, upload(http, weights), system=f"style {rng.randrange(3)}"
                )
            elif kind == "copy":
                reply = http.post(
                    "/api/copy", json={"source": name, "destination": rng.choice(NAMES) + "-copy"}
                )
            else:
                reply = http.request("DELETE", "/api/delete", json={"model": name})
            return kind, reply.status_code, reply.text

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(operation, range(200)))
    finally:
        stop.set()
        watcher.join()
    for kind, status, text in results:
        # absent names are 404s; a create can lose its blob to a racing delete's sweep (400)
        assert (
            status == 200
            or (status == 404 and kind in ("copy", "delete"))
            or (status == 400 and "missing blob" in text)
        ), (kind, status, text)
    done = {
        kind: sum(1 for k, s, _ in results if k == kind and s == 200)
        for kind in ("create", "copy", "delete")
    }
    assert all(count >= 10 for count in done.values()), done
    assert violations == []
    assert cluster.check_bucket() > 0
    assert check_models_answer(cluster.http)
    for name in [m["name"] for m in cluster.http.get("/api/tags").json()["models"]]:
        cluster.http.request("DELETE", "/api/delete", json={"model": name})
    assert cluster.manifests() == {}


def test_a_replica_killed_mid_upload_is_routed_around_and_leaves_nothing(cluster, weights):
    with cluster.direct(0) as http:
        assert create(http, "survivor", upload(http, weights)).status_code == 200
    victim = cluster.replicas[2]
    payload = random.Random(7).randbytes(80 << 20)  # several parts
    digest = digest_of(payload)
    head = f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
    failures, answered, stop = [], [], threading.Event()
    killed_at = [float("inf")]

    def traffic():
        """Asks all along; a failure is kept with when its request was sent. Only a request
        the victim was already answering when it died may fail (its reply cut short cannot be
        retried); every request sent after the kill must be answered."""
        with httpx.Client(base_url=cluster.balancer.url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    status = http.post("/api/show", json={"model": "survivor"}).status_code
                except httpx.HTTPError as error:
                    failures.append((sent, type(error).__name__))
                    continue
                if status == 200:
                    answered.append(sent)
                else:
                    failures.append((sent, status))

    def failed_after_the_kill():
        return [failure for failure in failures if failure[0] >= killed_at[0]]

    client = threading.Thread(target=traffic)
    client.start()
    try:
        with socket.create_connection(("127.0.0.1", victim.port), timeout=30) as sock:
            sock.sendall(head + payload)
            deadline = time.monotonic() + 60
            while not cluster.s3.client.list_multipart_uploads(Bucket=cluster.bucket).get(
                "Uploads"
            ):
                assert time.monotonic() < deadline, "the upload to the bucket never started"
                time.sleep(0.01)
            victim.proc.send_signal(signal.SIGKILL)  # mid-way through the multipart upload
            victim.proc.wait(10)
            killed_at[0] = time.monotonic()
        deadline = time.monotonic() + 30
        while sum(sent >= killed_at[0] for sent in answered) < 10:  # answered around the dead one
            assert time.monotonic() < deadline and not failed_after_the_kill(), failures
            time.sleep(0.05)
    finally:
        stop.set()
        client.join()
        victim.stop()
    assert failed_after_the_kill() == [], "the balancer sent requests to the dead replica"
    assert len(failures) <= 1, failures  # at most the one in flight at the kill
    assert not cluster.blob_exists(digest)
    assert cluster.s3.client.list_multipart_uploads(Bucket=cluster.bucket).get("Uploads"), (
        "nothing to clean"
    )
    # Restarted (with a short grace, not to wait an hour): it sweeps its scratch folder and the
    # upload it left in the bucket, and the balancer takes it back.
    restarted = cluster.start_replica(2, port=victim.port, OLLAMAKIT_S3_GC_GRACE="0")
    cluster.replicas[2] = restarted
    assert not cluster.s3.client.list_multipart_uploads(Bucket=cluster.bucket).get("Uploads")
    assert [p for p in (restarted.models_dir / "blobs").glob("sha256-tmp-*/*")] == []
    deadline = time.monotonic() + 10
    while "survivor:latest" not in [m["name"] for m in restarted_tags(restarted)]:
        assert time.monotonic() < deadline
    for _ in range(9):  # round robin reaches the restarted replica again
        assert cluster.http.post("/api/show", json={"model": "survivor"}).status_code == 200
    assert (
        cluster.http.request("DELETE", "/api/delete", json={"model": "survivor"}).status_code == 200
    )


def restarted_tags(server: ServerProcess) -> list[dict]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        return http.get("/api/tags").json()["models"]


def fs_server(models) -> ServerProcess:
    """An ordinary instance on its own folder (the fs driver), outside the cluster."""
    models.mkdir()
    return ServerProcess(models, {"OLLAMAKIT_STORAGE": "fs"}).start()


def test_a_pull_through_one_replica_serves_every_replica(cluster, weights, tmp_path):
    source = fs_server(tmp_path / "source-models")
    try:
        with httpx.Client(base_url=source.url, timeout=60) as http:
            assert (
                create(
                    http, "library/pulled", upload(http, weights), system="From elsewhere."
                ).status_code
                == 200
            )
        name = f"127.0.0.1:{source.port}/library/pulled:latest"
        with cluster.direct(0) as first:
            reply = first.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
            assert reply.status_code == 200 and reply.json()["status"] == "success", reply.text
    finally:
        source.stop()  # gone: the other replicas cannot pull it again
    for index in (1, 2):
        with cluster.direct(index) as other:
            reply = other.post(
                "/api/generate",
                json={
                    "model": name,
                    "prompt": "hi",
                    "stream": False,
                    "options": {"num_predict": 1, "temperature": 0},
                },
            )
            assert reply.status_code == 200 and reply.json()["done"], reply.text
    # and another instance pulls it from a replica's /v2/ endpoints, read from the bucket
    target = fs_server(tmp_path / "target-models")
    try:
        port = cluster.replicas[1].port
        with httpx.Client(base_url=target.url, timeout=60) as http:
            reply = http.post(
                "/api/pull",
                json={
                    "model": f"127.0.0.1:{port}/library/pulled:latest",
                    "insecure": True,
                    "stream": False,
                },
            )
            assert reply.status_code == 200 and reply.json()["status"] == "success", reply.text
        assert (
            target.models_dir / "blobs" / f"sha256-{digest_of(weights)[7:]}"
        ).read_bytes() == weights
    finally:
        target.stop()
    assert cluster.http.request("DELETE", "/api/delete", json={"model": name}).status_code == 200
