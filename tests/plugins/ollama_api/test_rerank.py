"""Reranking over real HTTP: a random BertForSequenceClassification with all-MiniLM's tokenizer,
created from its safetensors folder, scores query-document pairs as sentence-transformers'
CrossEncoder does (tests/reference/cross-encoder-scores.json) through /api/rerank and /v1/rerank,
in llama-server's, Jina's, Cohere's and TEI's shapes; embedding models and bad requests get 400s."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import requests

from ollamakit.testing.encoders import (
    CROSS_RECORD,
    DOCUMENTS,
    QUERIES,
    tiny_cross_encoder,
    tiny_nomic_bert,
)
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.reference import reference_answers

pytestmark = pytest.mark.real_model  # all-MiniLM's tokenizer comes from the package registry


def _create(url: str, name: str, files: dict) -> None:
    digests = {}
    for key, path in files.items():
        data = path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert requests.post(f"{url}/api/blobs/{digest}", data=data, timeout=60).status_code in (
            200,
            201,
        )
        digests[key] = digest
    reply = requests.post(
        f"{url}/api/create", json={"model": name, "files": digests, "stream": False}, timeout=120
    )
    assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerank")
    folder = tiny_cross_encoder(root / "cross")
    nomic = tiny_nomic_bert(root / "nomic.gguf")
    (root / "models").mkdir()
    proc = ServerProcess(root / "models").start()
    try:
        _create(
            proc.url,
            "reranker",
            {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()},
        )
        _create(proc.url, "nomic", {"nomic.gguf": nomic})
        yield proc
    finally:
        proc.stop()


def post(server, path: str, body) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=60)


def test_scores_match_cross_encoder(server):
    reference = reference_answers(CROSS_RECORD)
    assert reference["queries"] == list(QUERIES) and reference["documents"] == list(DOCUMENTS)
    for query, logits, default in zip(QUERIES, reference["logits"], reference["default_scores"]):
        reply = post(
            server,
            "/api/rerank",
            {"model": "reranker", "query": query, "documents": list(DOCUMENTS)},
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        results = body["results"]
        assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS)))
        scores = [r["relevance_score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        by_index = {r["index"]: r["relevance_score"] for r in results}
        np.testing.assert_allclose([by_index[i] for i in range(len(DOCUMENTS))], logits, atol=1e-4)
        # CrossEncoder's default scores are the sigmoid of the same logits.
        sigmoid = [1 / (1 + math.exp(-by_index[i])) for i in range(len(DOCUMENTS))]
        np.testing.assert_allclose(sigmoid, default, atol=1e-4)
        assert body["model"] == "reranker"
        # [CLS] query [SEP] document [SEP] for each pair, as the CrossEncoder's tokenizer makes them
        start = QUERIES.index(query) * len(DOCUMENTS)
        assert body["prompt_eval_count"] == sum(
            len(ids) for ids in reference["ids"][start : start + len(DOCUMENTS)]
        )
        assert body["total_duration"] >= body["load_duration"] > 0


def test_v1_rerank_takes_a_raw_cohere_body(server):
    reference = reference_answers(CROSS_RECORD)
    raw = (
        '{"model": "reranker", "query": "what do llamas eat?", "top_n": 3, "return_documents": true, '
        '"documents": [' + ", ".join(f'{{"text": "{d}"}}' for d in DOCUMENTS) + "]}"
    )
    reply = requests.post(
        server.url + "/v1/rerank",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["object"] == "list" and body["model"] == "reranker"
    assert (
        body["usage"]["prompt_tokens"]
        == body["usage"]["total_tokens"]
        == sum(map(len, reference["ids"][:7]))
    )
    logits = reference["logits"][0]
    best = sorted(range(len(DOCUMENTS)), key=lambda i: -logits[i])[:3]
    assert [r["index"] for r in body["results"]] == best
    for result in body["results"]:
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
        assert abs(result["relevance_score"] - logits[result["index"]]) < 1e-4


def test_llama_server_and_tei_shapes(server):
    plain = post(
        server,
        "/v1/rerank",
        {"model": "reranker", "query": "llamas", "documents": ["grass", "hay", "rain"]},
    )
    assert plain.status_code == 200
    assert [set(r) for r in plain.json()["results"]] == [{"index", "relevance_score"}] * 3
    tei = post(
        server,
        "/v1/rerank",
        {
            "model": "reranker",
            "query": "llamas",
            "texts": ["grass", "hay", "rain"],
            "return_text": True,
        },
    )
    assert tei.status_code == 200 and isinstance(tei.json(), list)
    assert [(r["index"], r["text"]) for r in tei.json()] == [
        (r["index"], ["grass", "hay", "rain"][r["index"]]) for r in plain.json()["results"]
    ]
    for mine, theirs in zip(tei.json(), plain.json()["results"]):
        assert mine["score"] == theirs["relevance_score"]


def test_show_and_tags_report_rerank(server):
    shown = post(server, "/api/show", {"model": "reranker"}).json()
    assert shown["capabilities"] == ["rerank"]
    assert shown["model_info"]["bert.pooling_type"] == 4
    assert shown["model_info"]["bert.classifier.output_labels"] == ["LABEL_0"]
    tags = {
        m["name"]: m for m in requests.get(server.url + "/api/tags", timeout=30).json()["models"]
    }
    assert tags["reranker:latest"]["capabilities"] == ["rerank"]
    assert tags["nomic:latest"]["capabilities"] == ["embedding"]
    chat = post(
        server, "/api/chat", {"model": "reranker", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.status_code == 400 and "does not support chat" in chat.json()["error"]


def test_an_embedding_model_cannot_rerank(server):
    native = post(server, "/api/rerank", {"model": "nomic", "query": "q", "documents": ["d"]})
    assert (native.status_code, native.json()) == (
        400,
        {"error": '"nomic" does not support rerank'},
    )
    v1 = post(server, "/v1/rerank", {"model": "nomic", "query": "q", "documents": ["d"]})
    assert v1.status_code == 400
    assert v1.json() == {
        "error": {
            "code": 400,
            "message": '"nomic" does not support rerank',
            "type": "invalid_request_error",
        }
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "reranker", "documents": ["d"]}, '"query" must be provided'),
        ({"model": "reranker", "query": 3, "documents": ["d"]}, '"query" must be a string'),
        (
            {"model": "reranker", "query": "q", "documents": []},
            '"documents" must be a non-empty array',
        ),
        (
            {"model": "reranker", "query": "q", "documents": [1]},
            '"documents" must be strings or objects with a "text" string',
        ),
        (
            {"model": "reranker", "query": "q", "documents": ["d"], "top_n": 0},
            '"top_n" must be a positive integer',
        ),
        (
            {"model": "reranker", "query": "q", "documents": ["d"], "return_documents": "yes"},
            '"return_documents" must be a boolean',
        ),
    ],
)
def test_bad_requests_are_400s(server, body, message):
    native = post(server, "/api/rerank", body)
    assert (native.status_code, native.json()) == (400, {"error": message})
    v1 = post(server, "/v1/rerank", body)
    assert v1.status_code == 400 and v1.json()["error"]["message"] == message


def test_unknown_model_and_long_inputs(server):
    missing = post(server, "/api/rerank", {"model": "nope", "query": "q", "documents": ["d"]})
    assert missing.status_code == 404
    long_document = (
        "llama " * 2000
    )  # past the 512 positions: cut longest first, as transformers does
    cut = post(
        server, "/api/rerank", {"model": "reranker", "query": "q", "documents": [long_document]}
    )
    assert cut.status_code == 200 and cut.json()["prompt_eval_count"] == 512
    refused = post(
        server,
        "/api/rerank",
        {"model": "reranker", "query": "q", "documents": [long_document], "truncate": False},
    )
    assert (
        refused.status_code == 400
        and refused.json()["error"] == "the input length exceeds the context length"
    )
