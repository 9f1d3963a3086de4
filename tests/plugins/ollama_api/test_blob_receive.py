"""Blob uploads received by the ``http`` transport straight into the store's scratch folder,
over real HTTP: every way a body can arrive, and every way an upload can fail to finish."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import ollama
import pytest

from model_store_helpers import digest_of, snapshot
from ollamakit.testing.fixtures import ServerProcess

SIZE = 8 << 20  # well above the transport's 1 MiB threshold for receiving into a scratch file


def uploads_in_progress(models: Path) -> list[Path]:
    return sorted(models.rglob("*.upload"))


def wait_until(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def blob_file(models: Path, digest: str) -> Path:
    return models / "blobs" / f"sha256-{digest[7:]}"


def chunked(data: bytes, size: int = 100_003, last: bool = True) -> bytes:
    """``data`` in HTTP/1.1 chunked encoding, with uneven chunk sizes; ``last=False`` leaves
    out the final zero-size chunk."""
    out = bytearray()
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out + (b"0\r\n\r\n" if last else b""))


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def post_head(digest: str, framing: str) -> bytes:
    return (
        f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        f"{framing}\r\n\r\n"
    ).encode()


def status_of(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        piece = sock.recv(4096)
        if not piece:
            break
        reply += piece
    return int(reply.split(b" ", 2)[1])


@pytest.fixture
def payload() -> bytes:
    return os.urandom(SIZE)


def test_official_client_create_blob(server, models_dir, tmp_path, payload):
    source = tmp_path / "layer.bin"
    source.write_bytes(payload)
    digest = ollama.Client(host=server.url).create_blob(source)
    assert digest == digest_of(payload)
    assert blob_file(models_dir, digest).read_bytes() == payload
    assert uploads_in_progress(models_dir) == []
    # Ollama's layout: the upload's scratch file was in blobs/, in the server's own folder
    # there (which goes when the server stops), and nothing else is left.
    assert sorted(p.name for p in models_dir.iterdir()) == ["blobs", "manifests"]
    assert [p.name for p in (models_dir / "blobs").iterdir() if p.is_file()] == [
        f"sha256-{digest[7:]}"
    ]


def test_an_upload_in_progress_is_an_ollama_style_temporary_blob(server, models_dir, payload):
    with connect(server) as sock:
        sock.sendall(post_head(digest_of(payload), f"Content-Length: {SIZE}") + payload[:-1])
        [scratch] = wait_until(lambda: uploads_in_progress(models_dir))
        assert scratch.parent.parent == models_dir / "blobs" and scratch.name.startswith("sha256-")
        assert scratch.parent.name.startswith("sha256-tmp-")  # the server's own temporary folder
        assert not (models_dir / "tmp").exists()
        assert ollama.Client(host=server.url).list().models == []
        sock.sendall(payload[-1:])
        assert status_of(sock) == 201
    assert uploads_in_progress(models_dir) == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_with_each_framing(server, models_dir, payload, framing):
    digest = digest_of(payload)
    body = payload if framing == "content-length" else iter([payload[:777_777], payload[777_777:]])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        reply = client.post(f"/api/blobs/{digest}", content=body)
        assert (reply.status_code, reply.content) == (201, b"")
        assert ("chunked" in reply.request.headers.get("transfer-encoding", "")) == (
            framing == "chunked"
        )
        assert client.post(f"/api/blobs/{digest}", content=payload).status_code == 200
        assert client.head(f"/api/blobs/{digest}").status_code == 200
    assert blob_file(models_dir, digest).read_bytes() == payload
    assert uploads_in_progress(models_dir) == []


def test_raw_chunked_body_with_uneven_chunks(server, models_dir, payload):
    digest = digest_of(payload)
    with connect(server) as sock:
        sock.sendall(post_head(digest, "Transfer-Encoding: chunked") + chunked(payload))
        assert status_of(sock) == 201
    assert blob_file(models_dir, digest).read_bytes() == payload


def test_expect_100_continue(server, models_dir, payload):
    digest = digest_of(payload)
    with connect(server) as sock:
        sock.sendall(post_head(digest, f"Content-Length: {len(payload)}\r\nExpect: 100-continue"))
        assert status_of(sock) == 100
        sock.sendall(payload)
        assert status_of(sock) == 201
    assert blob_file(models_dir, digest).read_bytes() == payload


def test_digest_mismatch_leaves_nothing(server, models_dir, payload):
    before = snapshot(models_dir)
    claimed = digest_of(b"something else")
    reply = httpx.post(f"{server.url}/api/blobs/{claimed}", content=payload)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": f'digest mismatch, expected "{claimed}", got "{digest_of(payload)}"'
    }
    assert snapshot(models_dir) == before
    assert uploads_in_progress(models_dir) == []


def test_invalid_digest_after_a_large_body_leaves_nothing(server, models_dir, payload):
    before = snapshot(models_dir)
    reply = httpx.post(f"{server.url}/api/blobs/sha256:abc", content=payload)
    assert (reply.status_code, reply.json()) == (400, {"error": "invalid digest format"})
    # The app never took the file: the transport removes it once the response is out.
    wait_until(lambda: not uploads_in_progress(models_dir))
    assert snapshot(models_dir) == before


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_cut_off_midway(server, models_dir, payload, framing):
    """The body lands in a scratch file while it arrives; when the client hangs up midway,
    the file goes and the store is byte-for-byte as before."""
    before = snapshot(models_dir)
    digest = digest_of(payload)
    if framing == "chunked":
        head, body = post_head(digest, "Transfer-Encoding: chunked"), chunked(payload)[: SIZE // 2]
    else:
        head, body = post_head(digest, f"Content-Length: {SIZE}"), payload[: SIZE // 2]
    with connect(server) as sock:
        sock.sendall(head + body)
        [scratch] = wait_until(lambda: uploads_in_progress(models_dir))
        wait_until(lambda: scratch.stat().st_size >= SIZE // 4)  # written as it arrives
    wait_until(lambda: not uploads_in_progress(models_dir))
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 404
    assert snapshot(models_dir) == before

    # The same upload, completed, works afterwards.
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=payload).status_code == 201
    assert blob_file(models_dir, digest).read_bytes() == payload


def test_malformed_chunked_body_is_refused_before_the_app(server, models_dir, payload):
    """waitress rejects broken chunked framing itself: the app never runs, the file still goes."""
    before = snapshot(models_dir)
    with connect(server) as sock:
        sock.sendall(
            post_head(digest_of(payload), "Transfer-Encoding: chunked")
            + chunked(payload[: SIZE // 2], last=False)
        )
        wait_until(lambda: uploads_in_progress(models_dir))
        sock.sendall(b"not-a-chunk-size\r\n")
        assert status_of(sock) == 400
    wait_until(lambda: not uploads_in_progress(models_dir))
    assert snapshot(models_dir) == before


def test_server_shutdown_mid_upload_leaves_no_scratch_file(models_dir, payload):
    server = ServerProcess(models_dir).start()
    try:
        with connect(server) as sock:
            sock.sendall(
                post_head(digest_of(payload), f"Content-Length: {SIZE}") + payload[: SIZE // 2]
            )
            wait_until(lambda: uploads_in_progress(models_dir))
            server.proc.terminate()
            server.proc.wait(10)
    finally:
        server.stop()
    assert uploads_in_progress(models_dir) == []
    assert list((models_dir / "blobs").iterdir()) == []


def test_start_up_removes_what_a_killed_server_left(models_dir):
    blobs = models_dir / "blobs"
    blobs.mkdir(exist_ok=True)
    stale, fresh = blobs / "sha256-k1ll3d_x.upload", blobs / "sha256-l1v3_abc.upload"
    stale_output = blobs / "sha256-q7_xx9zz.gguf"  # a create's output, cut short
    partial = blobs / f"sha256-{'ab' * 32}-partial"  # a pull to resume: the registry's to keep
    for path in (stale, fresh, stale_output, partial):
        path.write_bytes(b"left by another process")
    for path in (stale, stale_output, partial):
        os.utime(path, (time.time() - 86400, time.time() - 86400))
    server = ServerProcess(models_dir).start()
    server.stop()
    assert not stale.exists() and not stale_output.exists()
    assert fresh.exists() and partial.exists()


def test_an_empty_scratch_folder_of_earlier_versions_goes(models_dir):
    (models_dir / "tmp").mkdir()
    server = ServerProcess(models_dir).start()
    server.stop()
    assert sorted(p.name for p in models_dir.iterdir()) == ["blobs", "manifests"]


def test_third_party_storage_driver(tmp_path, payload):
    """The acme example keeps its scratch folder beside its objects: uploads land there."""
    models = tmp_path / "models"
    models.mkdir()
    server = ServerProcess(models, env={"OLLAMAKIT_STORAGE": "acme"}).start()
    try:
        digest = digest_of(payload)
        with connect(server) as sock:
            sock.sendall(post_head(digest, f"Content-Length: {SIZE}") + payload[:-1])
            [scratch] = wait_until(lambda: uploads_in_progress(models))
            assert scratch.parent == models / "acme" / "tmp"
            sock.sendall(payload[-1:])
            assert status_of(sock) == 201
        assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
        assert uploads_in_progress(models) == []
        [stored] = [p for p in (models / "acme" / "objects").rglob("*") if p.is_file()]
        assert stored.read_bytes() == payload
    finally:
        server.stop()
