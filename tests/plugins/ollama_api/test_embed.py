"""Embeddings: all-MiniLM-L6-v2 imported from its safetensors folder with the official client
against a real server reproduces sentence-transformers; plus the endpoints' rules (inputs,
truncation, dimensions, errors) and decoder models that embed by mean pooling."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import ollama
import pytest

from ollamakit.testing import models
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.reference import reference_answers


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def upload_folder(client: ollama.Client, folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): client.create_blob(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.real_model
def test_all_minilm_through_the_official_client(server):
    reference = reference_answers("all-minilm-embeddings.json")
    client = ollama.Client(host=server.url)
    files = upload_folder(client, models.all_minilm_l6_v2())
    statuses = [e.status for e in client.create(model="all-minilm", files=files, stream=True)]
    assert statuses[0] == "converting model"
    assert statuses[-2:] == ["writing manifest", "success"]

    shown = client.show("all-minilm")
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo["general.architecture"] == "bert"
    assert shown.modelinfo["bert.pooling_type"] == 1
    assert shown.modelinfo["bert.embedding_length"] == 384
    assert shown.details.family == "bert"

    reply = client.embed(model="all-minilm", input=reference["inputs"])
    assert len(reply.embeddings) == len(reference["inputs"])
    for got, want in zip(reply.embeddings, reference["embeddings"]):
        assert len(got) == 384
        assert abs(np.linalg.norm(got) - 1) < 1e-5
        assert cosine(got, want) >= 0.9999
    assert reply.prompt_eval_count > len(reference["inputs"]) * 3
    assert reply.total_duration >= reply.load_duration > 0

    for text, want in zip(reference["inputs"], reference["embeddings"]):
        legacy = client.embeddings(model="all-minilm", prompt=text).embedding
        assert cosine(legacy, want) >= 0.9999

    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model="all-minilm", prompt="hello")
    assert info.value.status_code == 400 and "does not support generate" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="all-minilm", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 400 and "does not support chat" in info.value.error


@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory):
    """A model directory holding all-minilm, created once for the module's in-process tests."""
    from falcon.testing import TestClient

    from ollamakit.config import Settings
    from ollamakit.kernel import make_kernel
    from ollamakit.web import create_app

    models_dir = tmp_path_factory.mktemp("models")
    kernel = make_kernel(Settings(models_dir=models_dir))
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    folder = models.all_minilm_l6_v2()
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
            files[str(path.relative_to(folder))] = digest
    assert (
        client.simulate_post("/api/create", json={"model": "minilm", "files": files}).status_code
        == 200
    )
    kernel.close()
    return models_dir


@pytest.fixture
def api(minilm_store):
    from falcon.testing import TestClient

    from ollamakit.config import Settings
    from ollamakit.kernel import make_kernel
    from ollamakit.web import create_app

    kernel = make_kernel(Settings(models_dir=minilm_store))
    yield TestClient(create_app(kernel), headers={"Host": "localhost"})
    kernel.close()


@pytest.mark.real_model
def test_embed_request_rules(api):
    one = api.simulate_post("/api/embed", json={"model": "minilm", "input": "a dog"})
    assert one.status_code == 200
    assert (
        len(one.json["embeddings"]) == 1 and one.json["prompt_eval_count"] == 4
    )  # [CLS] a dog [SEP]

    cut = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": ["first", "second"], "dimensions": 8}
    ).json
    assert [len(v) for v in cut["embeddings"]] == [8, 8]
    full = api.simulate_post("/api/embed", json={"model": "minilm", "input": ["first"]}).json[
        "embeddings"
    ][0]
    head = np.asarray(full[:8]) / np.linalg.norm(full[:8])
    np.testing.assert_allclose(cut["embeddings"][0], head, atol=1e-6)
    assert abs(np.linalg.norm(cut["embeddings"][1]) - 1) < 1e-6

    long_text = "word " * 700
    refused = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": long_text, "truncate": False}
    )
    assert refused.status_code == 400 and refused.json == {
        "error": "the input length exceeds the context length"
    }
    truncated = api.simulate_post("/api/embed", json={"model": "minilm", "input": long_text})
    assert (
        truncated.status_code == 200 and truncated.json["prompt_eval_count"] == 256
    )  # max_seq_length
    wide = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": long_text, "options": {"num_ctx": 4096}}
    )
    assert (
        wide.json["prompt_eval_count"] == 512
    )  # a request's num_ctx wins, within the 512 positions
    small = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": long_text, "options": {"num_ctx": 16}}
    )
    assert small.json["prompt_eval_count"] == 16

    for bad in (123, ["ok", 4], {"a": 1}, True):
        reply = api.simulate_post("/api/embed", json={"model": "minilm", "input": bad})
        assert (reply.status_code, reply.json) == (400, {"error": "invalid input type"})
    for empty in ("", [], None):
        reply = api.simulate_post("/api/embed", json={"model": "minilm", "input": empty})
        assert reply.status_code == 200 and reply.json == {"model": "minilm", "embeddings": []}

    missing = api.simulate_post("/api/embed", json={"model": "nope", "input": "x"})
    assert (missing.status_code, missing.json) == (
        404,
        {"error": 'model "nope" not found, try pulling it first'},
    )
    assert api.simulate_post("/api/embed", json={"input": "x"}).status_code == 404
    assert (
        api.simulate_post(
            "/api/embed", json={"model": "minilm", "input": "x", "dimensions": "8"}
        ).status_code
        == 400
    )


@pytest.mark.real_model
def test_inputs_past_max_seq_length_match_sentence_transformers(api):
    """sentence-transformers cuts all-MiniLM inputs at its max_seq_length, 256 tokens, below the
    model's 512 positions; the created model carries it as num_ctx, so long inputs give its
    vectors (recorded: tests/reference/all-minilm-long-embeddings.json)."""
    reference = reference_answers("all-minilm-long-embeddings.json")
    assert reference["max_seq_length"] == 256
    assert (
        reference["untruncated_tokens"][0]
        < 256
        < reference["untruncated_tokens"][1]
        < 512
        < reference["untruncated_tokens"][2]
    )
    shown = api.simulate_post("/api/show", json={"model": "minilm"}).json
    assert shown["parameters"] == "num_ctx                        256"
    assert (
        shown["model_info"]["bert.context_length"] == 512
    )  # the positions stay as converters write them
    reply = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": reference["inputs"]}
    ).json
    assert reply["prompt_eval_count"] == sum(min(n, 256) for n in reference["untruncated_tokens"])
    for got, want in zip(reply["embeddings"], reference["embeddings"]):
        assert cosine(got, want) >= 0.9999
    legacy = api.simulate_post(
        "/api/embeddings", json={"model": "minilm", "prompt": reference["inputs"][1]}
    ).json
    assert cosine(legacy["embedding"], reference["embeddings"][1]) >= 0.9999
    refused = api.simulate_post(
        "/api/embed", json={"model": "minilm", "input": reference["inputs"][1], "truncate": False}
    )
    assert refused.status_code == 400 and refused.json == {
        "error": "the input length exceeds the context length"
    }


@pytest.mark.real_model
def test_legacy_embeddings_endpoint(api):
    reply = api.simulate_post("/api/embeddings", json={"model": "minilm", "prompt": "a llama"})
    assert reply.status_code == 200 and len(reply.json["embedding"]) == 384
    modern = api.simulate_post("/api/embed", json={"model": "minilm", "input": "a llama"}).json[
        "embeddings"
    ][0]
    assert cosine(reply.json["embedding"], modern) > 0.99999
    assert api.simulate_post("/api/embeddings", json={"model": "minilm", "prompt": ""}).json == {
        "embedding": []
    }
    required = api.simulate_post("/api/embeddings", json={"prompt": "x"})
    assert (required.status_code, required.json) == (400, {"error": "model is required"})
    assert (
        api.simulate_post("/api/embeddings", json={"model": "nope", "prompt": "x"}).status_code
        == 404
    )


def test_decoder_models_embed_by_mean_pooling(client, tmp_path):
    """A llama model without a pooling type embeds as the mean of its final (normed) hidden
    states; /api/embed returns that, normalised, and /api/embeddings the raw mean."""
    from ollamakit_engine import load_runner
    from ollamakit_ggml import GgmlBackend

    path = tiny_llama(tmp_path / "tiny.gguf")
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert (
        client.simulate_post(
            "/api/create", json={"model": "tiny", "files": {"tiny.gguf": digest}}
        ).status_code
        == 200
    )

    runner = load_runner(path, GgmlBackend())
    tokens = runner.tokenizer.encode("hello there", add_special=True)
    hidden = runner.hidden_states(tokens)
    mean = np.asarray(hidden, np.float64).mean(axis=0)

    legacy = client.simulate_post(
        "/api/embeddings", json={"model": "tiny", "prompt": "hello there"}
    ).json["embedding"]
    np.testing.assert_allclose(legacy, mean, rtol=1e-4, atol=1e-5)
    modern = client.simulate_post(
        "/api/embed", json={"model": "tiny", "input": ["hello there"]}
    ).json
    np.testing.assert_allclose(modern["embeddings"][0], mean / np.linalg.norm(mean), atol=1e-5)
    assert modern["prompt_eval_count"] == len(tokens)
