"""Blob uploads through a server on the s3 driver go straight to the bucket as they arrive, over
real HTTP: parts are in the bucket before the body ends, and an upload that does not finish
(a client that leaves, a wrong digest) leaves no object and no multipart upload."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from ollamakit.testing.fixtures import ServerProcess

PART = 5 << 20
SIZE = 4 * PART + 12345  # several parts, the last one short


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_until(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def server(s3_server, s3_bucket, tmp_path):
    env = {**s3_server.env(s3_bucket), "OLLAMAKIT_STORAGE": "s3", "OLLAMAKIT_S3_PART_SIZE": "5M"}
    process = ServerProcess(tmp_path / "models", env).start()
    yield process
    process.stop()


def uploads(s3_server, bucket: str) -> list[dict]:
    return s3_server.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def parts_sent(s3_server, bucket: str) -> int:
    found = uploads(s3_server, bucket)
    if not found:
        return 0
    [upload] = found
    return len(
        s3_server.client.list_parts(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        ).get("Parts", [])
    )


def objects(s3_server, bucket: str) -> list[str]:
    listing = s3_server.client.list_objects_v2(Bucket=bucket, Prefix="blobs/")
    return [item["Key"] for item in listing.get("Contents", [])]


def scratch_files(models: Path) -> list[Path]:
    return [p for p in (models / "blobs").rglob("*") if p.is_file()]


def post_head(digest: str, size: int) -> bytes:
    return (
        f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n"
    ).encode()


def status_of(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        piece = sock.recv(4096)
        if not piece:
            break
        reply += piece
    return int(reply.split(b" ", 2)[1])


def test_parts_reach_the_bucket_before_the_body_ends(server, s3_server, s3_bucket, payload):
    digest = digest_of(payload)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(post_head(digest, SIZE) + payload[: 3 * PART])
        # the body is not finished, and the bucket already holds its first parts
        assert wait_until(lambda: parts_sent(s3_server, s3_bucket) >= 2)
        assert objects(s3_server, s3_bucket) == []
        sock.sendall(payload[3 * PART :])
        assert status_of(sock) == 201
    body = s3_server.client.get_object(Bucket=s3_bucket, Key=f"blobs/sha256-{digest[7:]}")["Body"]
    assert body.read() == payload
    assert uploads(s3_server, s3_bucket) == []
    # nothing stays on this replica's disk: its cache fills when the blob is used
    wait_until(lambda: scratch_files(server.models_dir) == [])
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=payload).status_code == 200


def test_a_chunked_upload_of_unknown_size_streams_too(server, s3_server, s3_bucket, payload):
    digest = digest_of(payload)
    pieces = (payload[i : i + 999_983] for i in range(0, SIZE, 999_983))
    reply = httpx.post(f"{server.url}/api/blobs/{digest}", content=pieces, timeout=60)
    assert reply.status_code == 201, reply.text
    assert objects(s3_server, s3_bucket) == [f"blobs/sha256-{digest[7:]}"]
    assert uploads(s3_server, s3_bucket) == []


def test_a_client_that_leaves_mid_body_leaves_nothing(server, s3_server, s3_bucket, payload):
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(post_head(digest_of(payload), SIZE) + payload[: 3 * PART])
        wait_until(lambda: parts_sent(s3_server, s3_bucket) >= 2)
    # the multipart upload is aborted: S3 drops its parts
    wait_until(lambda: uploads(s3_server, s3_bucket) == [])
    assert objects(s3_server, s3_bucket) == []
    wait_until(lambda: scratch_files(server.models_dir) == [])


def test_a_wrong_digest_is_refused_and_leaves_nothing(server, s3_server, s3_bucket, payload):
    claimed = digest_of(b"what the client promised")
    reply = httpx.post(f"{server.url}/api/blobs/{claimed}", content=payload, timeout=60)
    assert reply.status_code == 400
    assert "digest mismatch" in reply.json()["error"]
    assert uploads(s3_server, s3_bucket) == []
    assert objects(s3_server, s3_bucket) == []
    wait_until(lambda: scratch_files(server.models_dir) == [])
