"""Bad input to the model-management routes: the documented status and message, and a store
that is byte-for-byte what it was before."""

from __future__ import annotations

import struct

import pytest

from model_store_helpers import create, snapshot, tiny_gguf, upload

MISSING = "sha256:" + "0" * 64


@pytest.fixture
def store(client, models_dir, tmp_path):
    """A store holding one model, plus uploaded blobs of every kind of bad GGUF."""
    good = tiny_gguf(tmp_path / "good.gguf")
    blobs = {"good": upload(client, good)}
    create(client, model="existing", files={"m.gguf": blobs["good"]})
    bad = {
        "truncated": good[:100],
        "tensor_data_cut": good[:-16],
        "bad_magic": b"GGUX" + good[4:],
        "not_gguf": b"hello world, I am text",
        "big_endian": b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
        "huge_kv_count": b"GGUF" + struct.pack("<IQQ", 3, 0, 2**60),
        "huge_tensor_count": b"GGUF" + struct.pack("<IQQ", 3, 2**62, 0),
        "huge_string": b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**63) + b"k",
        "empty": b"",
    }
    blobs.update({name: upload(client, data) for name, data in bad.items()})
    return blobs


CREATE_CASES = [
    # (id, body builder, status, message prefix)
    (
        "traversal",
        lambda b: {"model": "m", "files": {"../x.gguf": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "absolute",
        lambda b: {"model": "m", "files": {"/etc/passwd": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "inner_dotdot",
        lambda b: {"model": "m", "files": {"a/../../b.gguf": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "empty_segment",
        lambda b: {"model": "m", "files": {"a//b.gguf": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "empty_key",
        lambda b: {"model": "m", "files": {"": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "adapter_traversal",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "adapters": {"../a": b["good"]}},
        400,
        "file path must be relative",
    ),
    (
        "empty_digest",
        lambda b: {"model": "m", "files": {"m.gguf": ""}},
        400,
        "invalid digest format",
    ),
    (
        "short_digest",
        lambda b: {"model": "m", "files": {"m.gguf": "sha256:abc"}},
        400,
        "invalid digest format",
    ),
    (
        "digest_path",
        lambda b: {"model": "m", "files": {"m.gguf": "sha256:../../etc/passwd"}},
        400,
        "invalid digest format",
    ),
    (
        "md5",
        lambda b: {"model": "m", "files": {"m.gguf": "md5:" + "a" * 32}},
        400,
        "invalid digest format",
    ),
    (
        "missing_blob",
        lambda b: {"model": "m", "files": {"m.gguf": MISSING}},
        400,
        f'blob "{MISSING}" for file "m.gguf" not found',
    ),
    (
        "missing_blob_nosuffix",
        lambda b: {"model": "m", "files": {"weights": MISSING}},
        400,
        f'blob "{MISSING}" for file "weights" not found',
    ),
    (
        "missing_adapter_blob",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "adapters": {"a.gguf": MISSING}},
        400,
        f'blob "{MISSING}" for file "a.gguf" not found',
    ),
    (
        "bad_name",
        lambda b: {"model": "bad name", "files": {"m.gguf": b["good"]}},
        400,
        "invalid model name",
    ),
    (
        "too_many_parts",
        lambda b: {"model": "a/b/c/d", "files": {"m.gguf": b["good"]}},
        400,
        "invalid model name",
    ),
    (
        "digest_name",
        lambda b: {"model": "m@sha256:" + "a" * 64, "files": {"m.gguf": b["good"]}},
        400,
        "invalid model name",
    ),
    ("empty_name", lambda b: {"files": {"m.gguf": b["good"]}}, 400, "invalid model name"),
    ("bad_from", lambda b: {"model": "m", "from": "no way"}, 400, "invalid model name"),
    ("neither", lambda b: {"model": "m"}, 400, "neither 'from' or 'files' was specified"),
    (
        "truncated",
        lambda b: {"model": "m", "files": {"m.gguf": b["truncated"]}},
        400,
        "m.gguf: invalid GGUF: ",
    ),
    (
        "tensor_data_cut",
        lambda b: {"model": "m", "files": {"m.gguf": b["tensor_data_cut"]}},
        400,
        "m.gguf: invalid GGUF: tensor 'blk.0.ffn_down.weight' data runs past the end of the file",
    ),
    (
        "bad_magic",
        lambda b: {"model": "m", "files": {"m.gguf": b["bad_magic"]}},
        400,
        'supplied file "m.gguf" was not in GGUF format',
    ),
    (
        "text_as_gguf",
        lambda b: {"model": "m", "files": {"m.gguf": b["not_gguf"]}},
        400,
        'supplied file "m.gguf" was not in GGUF format',
    ),
    (
        "text_no_suffix",
        lambda b: {"model": "m", "files": {"notes.txt": b["not_gguf"]}},
        400,
        'unknown type: "notes.txt"',
    ),
    (
        "big_endian",
        lambda b: {"model": "m", "files": {"m.gguf": b["big_endian"]}},
        400,
        "m.gguf: invalid GGUF: unsupported version",
    ),
    (
        "huge_kv_count",
        lambda b: {"model": "m", "files": {"m.gguf": b["huge_kv_count"]}},
        400,
        "m.gguf: invalid GGUF: metadata count",
    ),
    (
        "huge_tensor_count",
        lambda b: {"model": "m", "files": {"m.gguf": b["huge_tensor_count"]}},
        400,
        "m.gguf: invalid GGUF: tensor count",
    ),
    (
        "huge_string",
        lambda b: {"model": "m", "files": {"m.gguf": b["huge_string"]}},
        400,
        "m.gguf: invalid GGUF: ",
    ),
    (
        "empty_file",
        lambda b: {"model": "m", "files": {"m.gguf": b["empty"]}},
        400,
        'supplied file "m.gguf" was not in GGUF format',
    ),
    (
        "bad_adapter",
        lambda b: {
            "model": "m",
            "files": {"m.gguf": b["good"]},
            "adapters": {"a.gguf": b["truncated"]},
        },
        400,
        "a.gguf: invalid GGUF: ",
    ),
    (
        "files_not_object",
        lambda b: {"model": "m", "files": ["m.gguf"]},
        400,
        "json: cannot unmarshal array into Go struct field CreateRequest.files",
    ),
    (
        "digest_not_string",
        lambda b: {"model": "m", "files": {"m.gguf": 5}},
        400,
        "json: cannot unmarshal number",
    ),
    (
        "stream_not_bool",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "stream": "no"},
        400,
        "json: cannot unmarshal string",
    ),
    (
        "license_not_strings",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "license": [1]},
        400,
        "license must be",
    ),
    (
        "bad_parameter",
        lambda b: {
            "model": "m",
            "files": {"m.gguf": b["good"]},
            "parameters": {"temperature": "hot"},
        },
        400,
        'invalid float value for parameter "temperature"',
    ),
    (
        "bad_stop",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "parameters": {"stop": [1]}},
        400,
        'invalid value for parameter "stop"',
    ),
    (
        "bad_messages",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "messages": ["hi"]},
        400,
        "json: cannot unmarshal",
    ),
    (
        "bad_image",
        lambda b: {
            "model": "m",
            "files": {"m.gguf": b["good"]},
            "messages": [{"role": "user", "images": ["data:x"]}],
        },
        400,
        "illegal base64 data",
    ),
    (
        "bad_requires",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "requires": "soon"},
        400,
        "requires must be a valid semver",
    ),
    (
        "bad_info",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "info": {"context_length": -1}},
        400,
        "info.context_length",
    ),
    (
        "draft_quantize_alone",
        lambda b: {"model": "m", "files": {"m.gguf": b["good"]}, "draft_quantize": "q8_0"},
        400,
        "--draft-quantize requires a DRAFT model",
    ),
    (
        "safetensors",
        lambda b: {"model": "m", "files": {"model.safetensors": b["not_gguf"]}},
        400,
        "the model folder has no config.json",
    ),
]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
@pytest.mark.parametrize(
    ("body", "status", "error"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_create_rejects(client, models_dir, store, body, status, error, stream):
    before = snapshot(models_dir)
    request = body(store)
    request.setdefault("stream", stream)
    response = client.simulate_post("/api/create", json=request)
    assert response.status_code == status, response.text
    assert response.json["error"].startswith(error), response.json
    assert snapshot(models_dir) == before


@pytest.mark.parametrize(
    "method", ["POST /api/create", "POST /api/show", "POST /api/copy", "DELETE /api/delete"]
)
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "missing request body"),
        (b"   ", "missing request body"),
        (b"{", "invalid JSON"),
        (b'{"model": "m",}', "invalid JSON"),
        (b"[1, 2]", "json: cannot unmarshal list"),
        (b"\xff\xfe", "invalid"),
    ],
    ids=["empty", "blank", "open_brace", "trailing_comma", "array", "not_utf8"],
)
def test_malformed_bodies(client, models_dir, store, method, raw, error):
    before = snapshot(models_dir)
    verb, path = method.split()
    response = client.simulate_request(
        verb, path, body=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["error"].startswith(error)
    assert snapshot(models_dir) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/api/show", {"model": 7}, 400, "json: cannot unmarshal"),
        (
            "POST",
            "/api/show",
            {"model": "existing", "verbose": "yes"},
            400,
            "json: cannot unmarshal",
        ),
        ("POST", "/api/show", {"model": "../../etc/passwd"}, 400, "invalid model name"),
        (
            "POST",
            "/api/copy",
            {"source": "existing", "destination": "../../x"},
            400,
            'destination "../../x" is invalid',
        ),
        (
            "POST",
            "/api/copy",
            {"source": "existing", "destination": ["x"]},
            400,
            "json: cannot unmarshal",
        ),
        ("DELETE", "/api/delete", {"model": "../existing"}, 400, 'name "../existing" is invalid'),
        (  # as Ollama decodes it: arguments are an object, not the JSON text OpenAI sends
            "POST",
            "/api/chat",
            {
                "model": "existing",
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
            },
            400,
            "json: cannot unmarshal str into field tool_calls.function.arguments",
        ),
        (
            "POST",
            "/api/chat",
            {
                "model": "existing",
                "messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}],
            },
            400,
            "json: cannot unmarshal str into field tool_calls.function of type",
        ),
        (  # tools are decoded into Ollama's api.Tool
            "POST",
            "/api/chat",
            {"model": "existing", "messages": [], "tools": [{"type": "function", "function": "f"}]},
            400,
            "json: cannot unmarshal str into field tools.function of type ToolFunction",
        ),
        (
            "POST",
            "/api/chat",
            {
                "model": "existing",
                "messages": [],
                "tools": [
                    {"function": {"name": "f", "parameters": {"type": "object", "required": "x"}}}
                ],
            },
            400,
            "json: cannot unmarshal str into field tools.function.parameters.required",
        ),
        (
            "POST",
            "/api/chat",
            {"model": "existing", "tools": ["f"]},
            400,
            "json: cannot unmarshal str into field tools of type Tool",
        ),
        (
            "DELETE",
            "/api/delete",
            {"model": "existing:other"},
            404,
            "model 'existing:other' not found",
        ),
    ],
)
def test_other_routes_reject(client, models_dir, store, method, path, body, status, error):
    before = snapshot(models_dir)
    response = client.simulate_request(method, path, json=body)
    assert response.status_code == status
    assert response.json["error"].startswith(error)
    assert snapshot(models_dir) == before


def test_wrong_method_and_unknown_route(client):
    assert client.simulate_get("/api/create").status_code == 405
    assert client.simulate_get("/api/delete").status_code == 405
    assert client.simulate_post("/api/tags").status_code == 405
    assert client.simulate_get("/api/nothing").status_code == 404
