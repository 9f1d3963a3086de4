"""Encoder folders beyond plain BERT: nomic-ai's ``NomicBertModel`` layout becomes a ``nomic-bert``
model whose vectors are llama.cpp's for the same weights; its config's fixed choices are checked."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hf_export import folder_files
from ollamakit.testing.encoders import NOMIC_RECORD, TEXTS, tiny_nomic_bert
from ollamakit.testing.reference import reference_answers
from tiny_folders import nomic_bert_folder


def upload(client, files: dict) -> dict[str, str]:
    digests = {}
    for name, path in files.items():
        data = path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
        digests[name] = digest
    return digests


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture
def nomic_folder(tmp_path):
    nomic_bert_folder(tmp_path / "hf", tiny_nomic_bert(tmp_path / "nomic.gguf"))
    return tmp_path / "hf"


def test_a_nomic_folder_embeds_as_llamacpp_does(client, nomic_folder):
    files = upload(client, folder_files(nomic_folder))
    assert (
        client.simulate_post("/api/create", json={"model": "nomic", "files": files}).status_code
        == 200
    )
    shown = client.simulate_post("/api/show", json={"model": "nomic"}).json
    assert shown["capabilities"] == ["embedding"]
    info = shown["model_info"]
    assert info["general.architecture"] == "nomic-bert"
    assert info["nomic-bert.context_length"] == 128  # max_trained_positions, not the declared 8192
    assert info["nomic-bert.pooling_type"] == 1 and info["nomic-bert.rope.freq_base"] == 1000.0
    reference = reference_answers(NOMIC_RECORD)
    reply = client.simulate_post("/api/embed", json={"model": "nomic", "input": list(TEXTS)}).json
    assert reply["prompt_eval_count"] == sum(len(ids) for ids in reference["ids"])
    for got, want in zip(reply["embeddings"], reference["embeddings"]):
        assert cosine(got, want) >= 1 - 1e-4


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("activation_function", "gelu", "activation_function = 'gelu' is not supported"),
        ("rotary_emb_interleaved", True, "rotary_emb_interleaved = True is not supported"),
        ("prenorm", True, "prenorm = True is not supported"),
        ("moe_every_n_layers", 2, "with experts (nomic-embed-text v2) is not supported"),
    ],
)
def test_unsupported_nomic_configs_are_a_400(client, nomic_folder, key, value, message):
    config = json.loads((nomic_folder / "config.json").read_text())
    (nomic_folder / "config.json").write_text(json.dumps({**config, key: value}))
    files = upload(client, folder_files(nomic_folder))
    reply = client.simulate_post("/api/create", json={"model": "nomic", "files": files})
    assert reply.status_code == 400 and message in reply.json["error"]
