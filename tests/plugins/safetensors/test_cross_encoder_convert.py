"""A ``BertForSequenceClassification`` folder becomes a rank model: the classifier as ``cls.output``
with its labels, BERT's pooler as ``cls``; the engine's score is the head on the [CLS] vector
(the vector the same file gives with CLS pooling), with the pooler's tanh, or without it for a
file made by llama.cpp's converter, which drops the pooler."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from hf_export import folder_files
from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.lib.tokenizers import load_tokenizer
from ollamakit.testing.gguf_factory import make_gguf
from ollamakit_engine.bert import build_bert_runner
from ollamakit_engine.requirements import check_bert
from ollamakit_numpy import NumpyBackend
from ollamakit_safetensors import ModelFolder, plan_conversion
from tiny_folders import bert_folder


def cross_encoder_folder(folder, labels=("LABEL_0",)):
    weights = bert_folder(folder, normalize=False)
    rng = np.random.default_rng(7)
    weights["classifier.weight"] = rng.standard_normal((len(labels), 32)).astype(np.float32)
    weights["classifier.bias"] = rng.standard_normal(len(labels)).astype(np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "modules.json").unlink()  # CrossEncoder folders have no sentence-transformers modules
    config = json.loads((folder / "config.json").read_text())
    config.update(architectures=["BertForSequenceClassification"], id2label=dict(enumerate(labels)))
    (folder / "config.json").write_text(json.dumps(config))
    return weights


def convert(folder, out):
    with ModelFolder(folder_files(folder)) as files:
        plan_conversion(files, "test").write(out)
    return out


def load(path, build=None):
    with GGUFFile.open(path) as gguf:
        check_bert(gguf)
        if build is not None:  # the ``build_bert`` fixture: each engine in turn
            return build(gguf, load_tokenizer(gguf.metadata))
        return build_bert_runner(gguf, NumpyBackend(), load_tokenizer(gguf.metadata))


def rewrite(source, target, *, metadata=None, drop=()):
    with GGUFFile.open(source) as gguf:
        values = {**gguf.metadata, **(metadata or {})}
        tensors = {
            t.name: np.asarray(gguf.tensor(t.name)) for t in gguf.tensors if t.name not in drop
        }
    return make_gguf(
        target, {k: v for k, v in values.items() if not k.startswith("GGUF.")}, tensors
    )


def test_the_head_scores_the_cls_vector(tmp_path, build_bert):
    weights = cross_encoder_folder(tmp_path / "hf", labels=("irrelevant", "relevant"))
    path = convert(tmp_path / "hf", tmp_path / "rank.gguf")
    with GGUFFile.open(path) as gguf:
        assert gguf.metadata["bert.pooling_type"] == 4
        assert gguf.metadata["bert.classifier.output_labels"] == ["irrelevant", "relevant"]
        names = {t.name for t in gguf.tensors}
    assert {"cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias"} <= names
    rank = load(path, build_bert)
    assert rank.pooling == "rank"
    pairs = [[3, 7, 8, 4, 6, 10, 4], [3, 12, 13, 4, 9, 4]]  # [CLS] ... [SEP] ... [SEP]
    types = [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
    scores = rank.embed(pairs, token_types=types)
    assert [s.shape for s in scores] == [(2,), (2,)]

    # The same file with CLS pooling gives the [CLS] vector the head reads.
    cls_file = rewrite(path, tmp_path / "cls.gguf", metadata={"bert.pooling_type": 2})
    vectors = load(cls_file, build_bert).embed(pairs, token_types=types)
    for vector, score in zip(vectors, scores):
        pooled = np.tanh(weights["pooler.dense.weight"] @ vector + weights["pooler.dense.bias"])
        expected = weights["classifier.weight"] @ pooled + weights["classifier.bias"]
        np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-5)
    # Segment types count: the document read as segment 0 scores differently.
    assert not np.allclose(rank.embed(pairs[:1])[0], scores[0])

    # llama.cpp's converter drops the pooler: the classifier then reads the [CLS] vector itself.
    bare = load(rewrite(path, tmp_path / "bare.gguf", drop=("cls.weight", "cls.bias")), build_bert)
    for vector, score in zip(vectors, bare.embed(pairs, token_types=types)):
        np.testing.assert_allclose(
            score,
            weights["classifier.weight"] @ vector + weights["classifier.bias"],
            rtol=1e-5,
            atol=1e-5,
        )


def test_a_rank_file_without_a_head_is_refused(tmp_path):
    cross_encoder_folder(tmp_path / "hf")
    path = convert(tmp_path / "hf", tmp_path / "rank.gguf")
    headless = rewrite(
        path,
        tmp_path / "headless.gguf",
        drop=("cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias"),
    )
    with GGUFFile.open(headless) as gguf, pytest.raises(InvalidModelFile, match="classifier head"):
        check_bert(gguf)


def test_token_types_are_checked(tmp_path, build_bert):
    cross_encoder_folder(tmp_path / "hf")
    rank = load(convert(tmp_path / "hf", tmp_path / "rank.gguf"), build_bert)
    with pytest.raises(BadRequest, match="token type outside"):
        rank.embed([[3, 7, 4]], token_types=[[0, 2, 0]])
    with pytest.raises(BadRequest, match="do not match"):
        rank.embed([[3, 7, 4]], token_types=[[0, 0]])


def test_bad_labels_are_a_clear_error(tmp_path):
    cross_encoder_folder(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "id2label": {"1": "a"}}))
    with pytest.raises(InvalidModelFile, match="id2label must name classes 0 to n-1"):
        convert(tmp_path / "hf", tmp_path / "rank.gguf")
