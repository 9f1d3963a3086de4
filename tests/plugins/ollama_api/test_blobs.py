"""HEAD|POST /api/blobs/:digest, including uploads that never finish."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from model_store_helpers import digest_of, snapshot


def test_upload_then_exists(client, models_dir):
    data = b"some layer bytes"
    digest = digest_of(data)
    assert client.simulate_head(f"/api/blobs/{digest}").status_code == 404
    first = client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert (first.status_code, first.content) == (201, b"")
    assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code == 200
    assert client.simulate_head(f"/api/blobs/{digest}").status_code == 200
    assert client.simulate_head(f"/api/blobs/sha256-{digest[7:]}").status_code == 200
    assert (models_dir / "blobs" / f"sha256-{digest[7:]}").read_bytes() == data


def test_digest_mismatch_leaves_nothing(client, models_dir):
    before = snapshot(models_dir)
    claimed = digest_of(b"other")
    response = client.simulate_post(f"/api/blobs/{claimed}", body=b"actual")
    assert response.status_code == 400
    assert response.json == {
        "error": f'digest mismatch, expected "{claimed}", got "{digest_of(b"actual")}"'
    }
    assert snapshot(models_dir) == before


def test_upper_case_digest_never_matches(client, models_dir):
    data = b"x"
    upper = "sha256:" + digest_of(data)[7:].upper()
    response = client.simulate_post(f"/api/blobs/{upper}", body=data)
    assert response.status_code == 400 and response.json["error"].startswith("digest mismatch")


@pytest.mark.parametrize(
    "digest",
    ["notadigest", "sha256:abc", "sha512:" + "a" * 64, "sha256:" + "g" * 64, "sha256:" + "a" * 65],
)
def test_invalid_digest_format(client, models_dir, digest):
    before = snapshot(models_dir)
    for response in (
        client.simulate_post(f"/api/blobs/{digest}", body=b"x"),
        client.simulate_head(f"/api/blobs/{digest}"),
    ):
        assert response.status_code == 400
    assert client.simulate_post(f"/api/blobs/{digest}", body=b"x").json == {
        "error": "invalid digest format"
    }
    assert snapshot(models_dir) == before


def test_short_body_is_not_committed(client, models_dir):
    """A body shorter than its Content-Length (the WSGI view of a dropped upload)."""
    data = b"0123456789"
    digest = digest_of(data)
    response = client.simulate_request(
        "POST", f"/api/blobs/{digest}", body=data[:4], headers={"Content-Length": "10"}
    )
    assert response.status_code == 400
    assert client.simulate_head(f"/api/blobs/{digest}").status_code == 404


def test_upload_cut_off_midway_over_real_http(server, models_dir):
    """A client that promises more bytes than it sends, then hangs up: no blob appears."""
    before = snapshot(models_dir)
    data = bytes(range(256)) * 4096  # 1 MiB promised
    digest = digest_of(data)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        sock.sendall(data[: len(data) // 3])
    time.sleep(0.5)
    assert requests.head(f"{server.url}/api/blobs/{digest}").status_code == 404
    assert snapshot(models_dir) == before

    # The same upload, completed, works afterwards.
    response = requests.post(f"{server.url}/api/blobs/{digest}", data=data)
    assert response.status_code == 201
    assert requests.head(f"{server.url}/api/blobs/{digest}").status_code == 200
