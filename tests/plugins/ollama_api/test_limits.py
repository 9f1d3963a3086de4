"""The documented limits (docs/configuration.md, "Limits"): past each, a 4xx naming it, quickly,
with the store byte-for-byte unchanged and the server still answering."""

from __future__ import annotations

import struct
import time

import pytest
from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.web import create_app

from model_store_helpers import create, snapshot, tiny_gguf, upload


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_with(kv: bytes, n_kv: int = 1) -> bytes:
    """A GGUF v3 header with no tensors and the given key/value bytes."""
    return b"GGUF" + struct.pack("<IQQ", 3, 0, n_kv) + kv


ARRAY, STRING, UINT32 = 9, 8, 4

HOSTILE_GGUFS = {
    # A million empty arrays in an array: 12 MB, which took seconds to read.
    "arrays_of_arrays": (
        gguf_with(
            gguf_string("a")
            + struct.pack("<IIQ", ARRAY, ARRAY, 1_000_000)
            + struct.pack("<IQ", UINT32, 0) * 1_000_000
        ),
        "m.gguf: invalid GGUF: metadata 'a' holds arrays of arrays past the limit of 1024 in all",
    ),
    "two_million_empty_strings": (
        gguf_with(
            gguf_string("a") + struct.pack("<IIQ", ARRAY, STRING, 2_000_000) + b"\0" * 8 * 2_000_000
        ),
        "m.gguf: invalid GGUF: metadata 'a' takes the metadata past 1048576 strings in arrays",
    ),
    "a_million_keys": (
        gguf_with(
            b"".join(
                gguf_string(f"k{i}") + struct.pack("<II", UINT32, 0) for i in range(1_000_000)
            ),
            1_000_000,
        ),
        "m.gguf: invalid GGUF: metadata count 1000000 is more than the limit of 16384",
    ),
}


@pytest.fixture
def existing(client, tmp_path):
    blob = upload(client, tiny_gguf(tmp_path / "good.gguf"))
    create(client, model="existing", files={"m.gguf": blob})
    return blob


def refused(
    client, models_dir, body: dict, status: int, message: str, seconds: float = 1.0
) -> None:
    before = snapshot(models_dir)
    started = time.monotonic()
    response = client.simulate_post("/api/create", json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text[:300]
    assert response.json == {"error": message}
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert snapshot(models_dir) == before
    assert [m["name"] for m in client.simulate_get("/api/tags").json["models"]] == [
        "existing:latest"
    ]


@pytest.mark.parametrize("case", HOSTILE_GGUFS, ids=list(HOSTILE_GGUFS))
def test_hostile_gguf_metadata_is_refused_quickly(client, models_dir, existing, case):
    data, message = HOSTILE_GGUFS[case]
    blob = upload(client, data)
    refused(client, models_dir, {"model": "m", "files": {"m.gguf": blob}}, 400, message)


def test_many_licenses_are_refused_quickly(client, models_dir, existing):
    licenses = ["x" * 1024 + str(i) for i in range(2000)]
    refused(
        client,
        models_dir,
        {"model": "m", "files": {"m.gguf": existing}, "license": licenses},
        400,
        "too many licenses: 2000 (at most 64)",
    )


def test_the_most_licenses_are_accepted_quickly(client, existing):
    started = time.monotonic()
    events = create(
        client,
        model="m",
        files={"m.gguf": existing},
        license=["x" * 1024 + str(i) for i in range(64)],
    )
    assert events[-1] == {"status": "success"} and time.monotonic() - started < 2.0
    assert len(client.simulate_post("/api/show", json={"model": "m"}).json["license"]) > 64 * 1024


@pytest.mark.parametrize(
    ("field", "value", "status", "message"),
    [
        (
            "license",
            ["x" * (5 << 20), "y" * (4 << 20)],
            413,
            "license too large: 9437184 bytes (at most 8388608)",
        ),
        (
            "template",
            "{{ .Prompt }}" + "x" * (8 << 20),
            413,
            "template too large: 8388621 bytes (at most 8388608)",
        ),
        ("system", "é" * (4 << 20) + "!", 413, "system too large: 8388609 bytes (at most 8388608)"),
        (
            "messages",
            [{"role": "user", "content": "hi"}] * 1025,
            400,
            "too many messages: 1025 (at most 1024)",
        ),
        (
            "parameters",
            {f"custom{i}": i for i in range(257)},
            400,
            "too many parameters: 257 (at most 256)",
        ),
        (
            "parameters",
            {"stop": ["x"] * 257},
            400,
            'too many values for parameter "stop": 257 (at most 256)',
        ),
    ],
)
def test_create_parts_past_their_limits(
    client, models_dir, existing, field, value, status, message
):
    refused(
        client,
        models_dir,
        {"model": "m", "files": {"m.gguf": existing}, field: value},
        status,
        message,
    )


def test_a_request_body_past_the_limit_is_a_413(models_dir, tmp_path):
    kernel = make_kernel(Settings(models_dir=models_dir, max_request_body=4096))
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    try:
        before = snapshot(models_dir)
        response = client.simulate_post(
            "/api/create", json={"model": "m", "from": "x", "system": "s" * 5000}
        )
        assert response.status_code == 413
        assert response.json == {
            "error": "request body too large: more than 4096 bytes (OLLAMAKIT_MAX_REQUEST_BODY)"
        }
        assert snapshot(models_dir) == before
        assert client.simulate_get("/api/tags").status_code == 200
    finally:
        kernel.close()


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_MAX_REQUEST_BODY", "1000")
    assert Settings.from_env().max_request_body == 1000
    monkeypatch.setenv("OLLAMAKIT_MAX_REQUEST_BODY", "lots")
    assert Settings.from_env().max_request_body == 64 << 20


@pytest.mark.parametrize("text", ["sha256:" + "0" * 64 + "\n", "sha256-" + "a" * 64 + "\n"])
def test_a_digest_with_a_final_newline_is_not_a_digest(text):
    from ollamakit.digests import is_digest

    assert not is_digest(text) and is_digest(text[:-1])


@pytest.mark.parametrize(
    "name", ["model\n", "model:tag\n", "ns/model\n", "host.example/ns/model:latest\n"]
)
def test_a_name_with_a_final_newline_is_not_a_name(client, name):
    from ollamakit.names import ModelName

    assert ModelName.parse(name) is None and ModelName.parse(name[:-1]) is not None
    response = client.simulate_post("/api/create", json={"model": name, "from": "x"})
    assert response.status_code == 400 and response.json == {"error": "invalid model name"}
