"""A server killed with SIGKILL in the middle of an upload, a quantize or a copy leaves its
temporary files in its own locked folder; the next start-up removes them, every manifest is
whole and every listed model answers. A live server's temporary files survive another
server's start-up on the same store."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest

from model_store_helpers import digest_of
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.leftovers import (
    check_manifests,
    check_models_answer,
    dead_folders,
    stray_files,
)

pytestmark = pytest.mark.slow

UPLOAD = 8 << 20  # received into a scratch file (over the transport's 1 MiB threshold)


def wait_for(condition, timeout: float = 20.0, every: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def temp_files(models_dir, pattern: str = "*") -> list:
    return [p for p in (models_dir / "blobs").glob(f"sha256-tmp-*/{pattern}") if p.is_file()]


def size_of(path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # committed or removed meanwhile
        return 0


def kill(server: ServerProcess) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


def upload_head(digest: str, length: int) -> bytes:
    return (
        f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def create_model(http: httpx.Client, name: str, path, **extra) -> None:
    data = path.read_bytes()
    assert http.post(f"/api/blobs/{digest_of(data)}", content=data).status_code in (200, 201)
    reply = http.post(
        "/api/create",
        json={"model": name, "files": {"m.gguf": digest_of(data)}, "stream": False, **extra},
    )
    assert reply.status_code == 200, reply.text


def restart_and_check(models_dir) -> list[str]:
    """Start a server on the store the killed one left: nothing of it survives start-up, every
    manifest parses, and every listed model answers."""
    assert dead_folders(models_dir), "the killed server left no temporary folder to clean"
    server = ServerProcess(models_dir).start()
    try:
        assert dead_folders(models_dir) == []
        assert stray_files(models_dir) == []
        check_manifests(models_dir)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            return check_models_answer(http)
    finally:
        server.stop()


@pytest.fixture
def small_model(tmp_path):
    return tiny_llama(
        tmp_path / "small.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
    )


def test_kill_during_an_upload(models_dir, small_model):
    server = ServerProcess(models_dir).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            create_model(http, "kept", small_model)
        payload = os.urandom(UPLOAD)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(upload_head(digest_of(payload), UPLOAD) + payload[: UPLOAD // 2])
            [partial] = wait_for(lambda: temp_files(models_dir, "*.upload"))
            wait_for(lambda: partial.stat().st_size >= UPLOAD // 4)
            kill(server)
    finally:
        server.stop()
    assert partial.exists()  # what the kill left, in the dead server's folder
    assert restart_and_check(models_dir) == ["kept:latest"]
    assert not partial.exists()


def test_kill_during_a_quantize(models_dir, small_model, tmp_path):
    big = tiny_llama(
        tmp_path / "big.gguf", n_layers=2, n_embd=512, n_heads=8, n_kv_heads=2, n_ff=2048
    )  # ~2 s to quantize
    server = ServerProcess(models_dir).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            create_model(http, "kept", small_model)
            data = big.read_bytes()
            assert http.post(f"/api/blobs/{digest_of(data)}", content=data).status_code == 201
            body = {"model": "big-q", "files": {"m.gguf": digest_of(data)}, "quantize": "q4_K_M"}
            with http.stream("POST", "/api/create", json=body) as reply:
                lines = reply.iter_lines()
                assert "quantizing" in next(line for line in lines if "quantizing" in line)
                outputs = wait_for(
                    lambda: [p for p in temp_files(models_dir, "*.gguf") if size_of(p)]
                )
                kill(server)
    finally:
        server.stop()
    assert any(p.exists() for p in outputs)  # the quantizer's output, cut short
    assert restart_and_check(models_dir) == ["kept:latest"]
    assert not any(p.exists() for p in outputs)


def test_kill_during_copies(models_dir, small_model):
    """A copy is one manifest write: many run back to back and the kill lands among them."""
    server = ServerProcess(models_dir).start()
    copied = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            create_model(http, "source", small_model)

            def copy_forever():
                try:
                    for i in range(100_000):
                        http.post(
                            "/api/copy", json={"source": "source", "destination": f"copy-{i}"}
                        )
                        copied.append(i)
                except httpx.HTTPError:
                    pass  # the server is gone

            thread = threading.Thread(target=copy_forever)
            thread.start()
            wait_for(lambda: len(copied) > 20)
            kill(server)
            thread.join(30)
    finally:
        server.stop()
    names = restart_and_check(models_dir)
    assert "source:latest" in names and len(names) >= 20


def test_a_live_servers_temporary_files_survive_another_start_up(models_dir, tmp_path):
    first = ServerProcess(models_dir).start()
    second = None
    try:
        payload = os.urandom(UPLOAD)
        with socket.create_connection(("127.0.0.1", first.port), timeout=30) as sock:
            sock.sendall(upload_head(digest_of(payload), UPLOAD) + payload[:-1])
            [partial] = wait_for(lambda: temp_files(models_dir, "*.upload"))
            wait_for(lambda: partial.stat().st_size == UPLOAD - 1)
            past = time.time() - 30 * 86400
            os.utime(partial, (past, past))  # age says nothing: ownership does
            os.utime(partial.parent, (past, past))
            second = ServerProcess(models_dir).start()  # its start-up sweeps the store
            assert partial.exists() and partial.stat().st_size == UPLOAD - 1
            sock.sendall(payload[-1:])
            assert sock.recv(64).startswith(b"HTTP/1.1 201")
        assert (models_dir / "blobs" / f"sha256-{digest_of(payload)[7:]}").read_bytes() == payload
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert stray_files(models_dir) == [] and dead_folders(models_dir) == []
