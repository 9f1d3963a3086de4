"""nomic-bert (nomic-embed-text's architecture) against llama.cpp: a tiny seeded random model's
token ids and mean-pooled vectors equal the ones llama-cpp-python gave for the same file
(tests/reference/llamacpp-nomic-bert.json), directly and through /api/embed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.lib.tokenizers import load_tokenizer
from ollamakit.testing.encoders import NOMIC_RECORD, TEXTS, tiny_nomic_bert
from ollamakit.testing.gguf_factory import make_gguf
from ollamakit.testing.reference import reference_answers
from ollamakit_engine.bert import build_bert_runner
from ollamakit_engine.requirements import check_bert
from ollamakit_numpy import NumpyBackend


@pytest.fixture(scope="module")
def nomic_path(tmp_path_factory):
    return tiny_nomic_bert(tmp_path_factory.mktemp("nomic") / "nomic.gguf")


def load(path, build=None):
    with GGUFFile.open(path) as gguf:
        check_bert(gguf)
        if build is not None:  # the ``build_bert`` fixture: each engine in turn
            return build(gguf, load_tokenizer(gguf.metadata))
        return build_bert_runner(gguf, NumpyBackend(), load_tokenizer(gguf.metadata))


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_fixture_is_the_recorded_one():
    assert reference_answers(NOMIC_RECORD)["texts"] == list(TEXTS)


def test_vectors_match_llamacpp(nomic_path, build_bert):
    reference = reference_answers(NOMIC_RECORD)
    runner = load(nomic_path, build_bert)
    assert runner.architecture == "nomic-bert" and runner.pooling == "mean"
    ids = [runner.tokenizer.encode(text, add_special=True, parse_special=True) for text in TEXTS]
    assert ids == reference["ids"]
    vectors = runner.embed(ids)  # one batch: inputs of different lengths padded together
    for got, want in zip(vectors, reference["embeddings"]):
        assert cosine(got, want) >= 1 - 1e-4
        np.testing.assert_allclose(got, want, atol=1e-5)  # 1e-6 on the recording CPU
    alone = runner.embed([ids[-1]])[0]  # padding does not change an input's vector
    np.testing.assert_allclose(alone, vectors[-1], atol=1e-5)


def test_rotary_positions_matter(nomic_path, build_bert):
    """Word order changes the vector (mean pooling alone would not see it): the positions are
    applied, and not as learned embeddings (there are none)."""
    runner = load(nomic_path, build_bert)
    forward = runner.tokenizer.encode("the cat sat on the mat", add_special=True)
    reordered = runner.tokenizer.encode("the mat sat on the cat", add_special=True)
    a, b = runner.embed([forward, reordered])
    assert cosine(a, b) < 0.999


def test_through_api_embed(client, nomic_path):
    data = nomic_path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.simulate_post(f"/api/blobs/{digest}", body=data)
    created = client.simulate_post(
        "/api/create", json={"model": "nomic", "files": {"nomic.gguf": digest}}
    )
    assert created.status_code == 200
    shown = client.simulate_post("/api/show", json={"model": "nomic"}).json
    assert shown["capabilities"] == ["embedding"]
    reference = reference_answers(NOMIC_RECORD)
    reply = client.simulate_post("/api/embed", json={"model": "nomic", "input": list(TEXTS)}).json
    assert reply["prompt_eval_count"] == sum(len(ids) for ids in reference["ids"])
    for got, want in zip(reply["embeddings"], reference["embeddings"]):
        assert abs(np.linalg.norm(got) - 1) < 1e-5
        assert cosine(got, want) >= 1 - 1e-4


def test_missing_gate_is_refused(tmp_path, nomic_path):
    with GGUFFile.open(nomic_path) as gguf:
        metadata = dict(gguf.metadata)
        tensors = {
            t.name: np.asarray(gguf.tensor(t.name))
            for t in gguf.tensors
            if t.name != "blk.1.ffn_gate.weight"
        }
    broken = make_gguf(tmp_path / "broken.gguf", metadata, tensors)
    with (
        GGUFFile.open(broken) as gguf,
        pytest.raises(InvalidModelFile, match="blk.1.ffn_gate.weight"),
    ):
        check_bert(gguf)
