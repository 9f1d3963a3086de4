"""``/api/create`` with safetensors folders: a good folder streams ``converting model`` and makes a
runnable model; a crafted or unconvertible one is a plain 400 that leaves the store as it was."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hf_export import folder_files
from safetensors_crafting import raw_file
from tiny_folders import bert_folder, qwen2_folder


def upload(client, files: dict) -> dict[str, str]:
    digests = {}
    for name, path in files.items():
        data = path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
        digests[name] = digest
    return digests


def store_state(models_dir) -> set[str]:
    return {str(p.relative_to(models_dir)) for p in models_dir.rglob("*") if p.is_file()}


def test_a_folder_becomes_a_model(client, tmp_path):
    qwen2_folder(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    reply = client.simulate_post("/api/create", json={"model": "tiny-qwen", "files": files})
    assert reply.status_code == 200
    statuses = [json.loads(line)["status"] for line in reply.text.splitlines()]
    assert statuses[0] == "converting model"
    assert statuses[1].startswith("creating new layer sha256:")
    assert statuses[-2:] == ["writing manifest", "success"]

    shown = client.simulate_post("/api/show", json={"model": "tiny-qwen"}).json
    assert shown["details"]["family"] == "qwen2"
    assert shown["details"]["quantization_level"] == "F16"
    assert shown["capabilities"] == ["completion"]
    assert shown["model_info"]["qwen2.block_count"] == 2
    tags = client.simulate_get("/api/tags").json["models"]
    assert [m["name"] for m in tags] == ["tiny-qwen:latest"]

    again = client.simulate_post(
        "/api/create", json={"model": "again", "files": files, "stream": False}
    )
    assert again.status_code == 200  # the same conversion, byte for byte: an existing layer
    assert (
        client.simulate_post("/api/show", json={"model": "again"}).json["details"]
        == shown["details"]
    )

    generated = client.simulate_post(
        "/api/generate",
        json={
            "model": "tiny-qwen",
            "prompt": "the",
            "raw": True,
            "stream": False,
            "options": {"num_predict": 3, "temperature": 0},
        },
    )
    assert generated.status_code == 200 and generated.json["eval_count"] >= 1


def test_a_folder_no_engine_runs_is_refused_naming_its_architecture(
    client, kernel, models_dir, tmp_path
):
    """The converted model is held to the engines' ``check_model`` like an uploaded file."""
    kernel.pm.unregister(name="engine")  # the decoder engine: nothing runs qwen2 now
    qwen2_folder(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "tiny-qwen", "files": files, "stream": False}
    )
    assert (reply.status_code, reply.json) == (
        400,
        {"error": "unsupported model architecture 'qwen2'"},
    )
    assert store_state(models_dir) == before


def test_an_embedding_folder_is_an_embedding_model(client, tmp_path):
    bert_folder(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    assert (
        client.simulate_post("/api/create", json={"model": "tiny-bert", "files": files}).status_code
        == 200
    )
    assert client.simulate_post("/api/show", json={"model": "tiny-bert"}).json["capabilities"] == [
        "embedding"
    ]
    reply = client.simulate_post(
        "/api/embed", json={"model": "tiny-bert", "input": ["the cat sat", "a dog"]}
    ).json
    assert len(reply["embeddings"]) == 2 and len(reply["embeddings"][0]) == 32
    chat = client.simulate_post(
        "/api/chat", json={"model": "tiny-bert", "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.status_code == 400 and chat.json["error"] == '"tiny-bert" does not support chat'


def test_max_seq_length_becomes_num_ctx_below_the_modelfile(client, tmp_path):
    """sentence-transformers cuts inputs at sentence_bert_config.json's max_seq_length; the model
    carries it as num_ctx, which a Modelfile PARAMETER still overrides."""
    bert_folder(tmp_path / "hf")
    (tmp_path / "hf" / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 8, "do_lower_case": False})
    )
    files = upload(client, folder_files(tmp_path / "hf"))
    assert (
        client.simulate_post("/api/create", json={"model": "short", "files": files}).status_code
        == 200
    )
    assert (
        client.simulate_post("/api/show", json={"model": "short"}).json["parameters"]
        == "num_ctx                        8"
    )
    text = " ".join(["the cat sat"] * 10)
    cut = client.simulate_post("/api/embed", json={"model": "short", "input": text}).json
    assert cut["prompt_eval_count"] == 8
    refused = client.simulate_post(
        "/api/embed", json={"model": "short", "input": text, "truncate": False}
    )
    assert refused.status_code == 400

    body = {"model": "wide", "files": files, "parameters": {"num_ctx": 16, "temperature": 0.5}}
    assert client.simulate_post("/api/create", json=body).status_code == 200
    shown = client.simulate_post("/api/show", json={"model": "wide"}).json["parameters"]
    assert "num_ctx                        16" in shown and "8" not in shown
    assert (
        client.simulate_post("/api/embed", json={"model": "wide", "input": text}).json[
            "prompt_eval_count"
        ]
        == 16
    )


@pytest.mark.parametrize("setting", [{"max_seq_length": 64}, {"max_seq_length": 500}, {}])
def test_max_seq_length_that_limits_nothing_adds_no_parameter(client, tmp_path, setting):
    bert_folder(tmp_path / "hf")  # 64 positions
    (tmp_path / "hf" / "sentence_bert_config.json").write_text(json.dumps(setting))
    files = upload(client, folder_files(tmp_path / "hf"))
    assert (
        client.simulate_post("/api/create", json={"model": "plain", "files": files}).status_code
        == 200
    )
    assert "parameters" not in client.simulate_post("/api/show", json={"model": "plain"}).json


def test_a_broken_max_seq_length_is_a_400(client, tmp_path):
    bert_folder(tmp_path / "hf")
    (tmp_path / "hf" / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": "long"})
    )
    files = upload(client, folder_files(tmp_path / "hf"))
    reply = client.simulate_post(
        "/api/create", json={"model": "bad", "files": files, "stream": False}
    )
    assert reply.status_code == 400
    assert reply.json == {
        "error": "sentence_bert_config.json: max_seq_length must be a positive whole number"
    }


def _crafted(path):
    """A header that lies: a tensor whose range runs past the end of the file."""
    header = {
        "model.embed_tokens.weight": {
            "dtype": "F16",
            "shape": [4096, 4096],
            "data_offsets": [0, 2 * 4096 * 4096],
        }
    }
    return raw_file(path, header, bytes(64))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            lambda d: _crafted(d / "model.safetensors"),
            "model.safetensors: the tensors cover 33554432 bytes of a 64-byte data section",
        ),
        (
            lambda d: raw_file(d / "model.safetensors", b"{" * 100, b"", length=1 << 40),
            "header length",
        ),
        (
            lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04\x95 pickle"),
            "model.safetensors",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({"architectures": ["T5ForConditionalGeneration"]})
            ),
            'unsupported architecture "T5ForConditionalGeneration"',
        ),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
    ],
)
def test_bad_folders_are_a_400_and_change_nothing(client, models_dir, tmp_path, breakage, message):
    qwen2_folder(tmp_path / "hf")
    breakage(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    before = store_state(models_dir)
    for stream in (True, False):
        reply = client.simulate_post(
            "/api/create", json={"model": "bad", "files": files, "stream": stream}
        )
        assert reply.status_code == 400, reply.text
        assert message in reply.json["error"]
    assert store_state(models_dir) == before
    assert client.simulate_get("/api/tags").json == {"models": []}


@pytest.mark.parametrize("dtype", [["F16"], {"F16": 1}])
def test_a_dtype_of_the_wrong_type_is_a_clean_400(client, models_dir, tmp_path, dtype):
    qwen2_folder(tmp_path / "hf")
    header = {"model.embed_tokens.weight": {"dtype": dtype, "shape": [4], "data_offsets": [0, 8]}}
    raw_file(tmp_path / "hf" / "model.safetensors", header, bytes(8))
    files = upload(client, folder_files(tmp_path / "hf"))
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "bad", "files": files, "stream": False}
    )
    assert reply.status_code == 400, reply.text
    assert reply.json["error"].startswith(
        "model.safetensors: tensor 'model.embed_tokens.weight' has unknown dtype"
    )
    assert "unhashable" not in reply.text and "Traceback" not in reply.text
    assert store_state(models_dir) == before
    assert client.simulate_get("/api/tags").status_code == 200


def test_paths_must_stay_inside_the_folder(client, tmp_path):
    qwen2_folder(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    for key in ("../model.safetensors", "/abs/model.safetensors", "a/../model.safetensors"):
        bad = {**files, key: files["model.safetensors"]}
        reply = client.simulate_post("/api/create", json={"model": "bad", "files": bad})
        assert (reply.status_code, reply.json) == (400, {"error": "file path must be relative"})


def test_missing_upload_and_an_adapter_without_its_config(client, tmp_path):
    qwen2_folder(tmp_path / "hf")
    files = upload(client, folder_files(tmp_path / "hf"))
    missing = {**files, "extra.safetensors": "sha256:" + "0" * 64}
    reply = client.simulate_post("/api/create", json={"model": "bad", "files": missing})
    assert (
        reply.status_code == 400 and 'for file "extra.safetensors" not found' in reply.json["error"]
    )
    adapter = {"adapter_model.safetensors": files["model.safetensors"]}
    reply = client.simulate_post(
        "/api/create", json={"model": "bad", "files": files, "adapters": adapter}
    )
    assert (reply.status_code, reply.json) == (
        400,
        {"error": "the adapter folder has no adapter_config.json"},
    )


def test_bfloat16_weights_stay_bfloat16(client, tmp_path):
    from safetensors_crafting import write_tensors

    weights = bert_folder(tmp_path / "hf")
    write_tensors(
        tmp_path / "hf" / "model.safetensors",
        weights,
        bf16=tuple(n for n, w in weights.items() if w.ndim == 2 and "position" not in n),
    )
    files = upload(client, folder_files(tmp_path / "hf"))
    assert (
        client.simulate_post("/api/create", json={"model": "bf", "files": files}).status_code == 200
    )
    shown = client.simulate_post("/api/show", json={"model": "bf", "verbose": True}).json
    assert shown["details"]["quantization_level"] == "BF16"
    types = {t["name"]: t["type"] for t in shown["tensors"]}
    assert types["blk.0.attn_q.weight"] == "BF16" and types["position_embd.weight"] == "F32"
    assert types["token_types.weight"] == "F32" and types["blk.0.attn_q.bias"] == "F32"
    vector = client.simulate_post("/api/embed", json={"model": "bf", "input": "the cat"}).json[
        "embeddings"
    ][0]
    assert np.isfinite(vector).all()
