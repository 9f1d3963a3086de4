"""What the ``http`` transport refuses itself, over real sockets: the client reads a JSON answer
(never a reset), nothing is stored, no temporary file is left, and the server goes on."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest

from model_store_helpers import digest_of, snapshot
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.leftovers import dead_folders, stray_files

LIMIT = 1 << 20


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    models = tmp_path_factory.mktemp("transport") / "models"
    models.mkdir()
    server = ServerProcess(models, env={"OLLAMAKIT_MAX_REQUEST_BODY": str(LIMIT)}).start()
    yield server
    server.stop()


def exchange(server, data: bytes, half_close: bool = False) -> tuple[int, dict]:
    """Send ``data``, optionally shut our sending side, read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def still_answers(server, models_dir, before) -> None:
    assert httpx.get(f"{server.url}/api/tags", timeout=10).status_code == 200
    assert snapshot(models_dir) == before
    assert stray_files(models_dir) == [] and dead_folders(models_dir) == []


def blob_post(digest: str, framing: str) -> bytes:
    return f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n\r\n".encode()


def test_a_megabyte_header_line_is_a_431(served):
    before = snapshot(served.models_dir)
    request = (
        b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    )
    assert exchange(served, request) == (431, {"error": "request header fields too large"})
    still_answers(served, served.models_dir, before)


def test_a_body_past_the_limit_is_refused_before_it_is_sent(served):
    before = snapshot(served.models_dir)
    head = f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {50 * LIMIT}\r\n\r\n".encode()
    status, body = exchange(served, head + b"{" * (4 * LIMIT))  # a fraction of what it announced
    assert status == 413
    assert body == {
        "error": f"request body too large: more than {LIMIT} bytes (OLLAMAKIT_MAX_REQUEST_BODY)"
    }
    still_answers(served, served.models_dir, before)


def test_a_blob_upload_is_not_held_to_the_body_limit(served):
    payload = os.urandom(2 * LIMIT)
    reply = httpx.post(f"{served.url}/api/blobs/{digest_of(payload)}", content=payload, timeout=30)
    assert reply.status_code == 201


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "scratch-file"])
def test_an_upload_cut_short_on_a_half_closed_socket_gets_an_answer(served, size):
    before = snapshot(served.models_dir)
    payload = os.urandom(size)
    request = blob_post(digest_of(payload), f"Content-Length: {size}") + payload[: size // 2]
    status, body = exchange(served, request, half_close=True)
    assert (status, body) == (
        400,
        {"error": "upload interrupted: body ended before Content-Length"},
    )
    still_answers(served, served.models_dir, before)


def test_a_chunked_upload_cut_short_on_a_half_closed_socket_gets_an_answer(served):
    before = snapshot(served.models_dir)
    payload = os.urandom(3 << 20)
    request = (
        blob_post(digest_of(payload), "Transfer-Encoding: chunked")
        + b"%x\r\n" % len(payload)
        + payload[:1000]
    )
    status, body = exchange(served, request, half_close=True)
    assert (status, body) == (
        400,
        {"error": "upload interrupted: body ended before its last chunk"},
    )
    still_answers(served, served.models_dir, before)


@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_a_digest_ending_in_a_newline_is_refused(served, method):
    before = snapshot(served.models_dir)
    empty = digest_of(b"")
    request = (
        f"{method} /api/blobs/{empty}%0a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(request)
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    assert reply.startswith(b"HTTP/1.1 400 ")
    if method == "POST":
        assert reply.endswith(b'{"error":"invalid digest format"}')
    still_answers(served, served.models_dir, before)
