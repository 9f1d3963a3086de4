"""Images never vanish: a model whose images cannot be run answers 400 instead of reading the
text alone."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from ollamakit.testing.gguf_factory import make_gguf, tiny_llama


def upload(client, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
    return digest


def create(client, **body) -> None:
    reply = client.simulate_post("/api/create", json=body)
    assert reply.status_code == 200, reply.text


pytest.importorskip("ollamakit_engine")


def png(colour=(200, 10, 10), size=(16, 16)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def unusable_projector(client, tmp_path):
    """A tiny llama with a projector layer of a kind no engine runs."""
    model = upload(client, tiny_llama(tmp_path / "tiny.gguf").read_bytes())
    projector = make_gguf(
        tmp_path / "mmproj.gguf",
        {
            "general.architecture": "clip",
            "general.type": "mmproj",
            "clip.has_vision_encoder": True,
            "clip.projector_type": "no-such-kind",
            "clip.vision.block_count": 1,
        },
        {"v.patch_embd.weight": np.zeros((4, 3, 2, 2), np.float32)},
    )
    create(
        client,
        model="seer",
        files={"model.gguf": model, "mmproj.gguf": upload(client, projector.read_bytes())},
    )
    return client


def test_images_to_a_model_that_cannot_see_them_are_refused(unusable_projector):
    client = unusable_projector
    shown = client.simulate_post("/api/show", json={"model": "seer"}).json
    assert "vision" in shown["capabilities"]
    body = {
        "model": "seer",
        "prompt": "what colour?",
        "images": [png()],
        "stream": False,
        "options": {"num_predict": 2},
    }
    reply = client.simulate_post("/api/generate", json=body)
    assert reply.status_code == 400
    assert reply.json == {"error": "this model is missing data required for image input"}
    chat = {
        "model": "seer",
        "messages": [{"role": "user", "content": "what colour?", "images": [png()]}],
        "stream": False,
    }
    reply = client.simulate_post("/api/chat", json=chat)
    assert reply.status_code == 400 and "image input" in reply.json["error"]
    # the same model without images still answers
    del body["images"]
    assert client.simulate_post("/api/generate", json=body).status_code == 200


@pytest.mark.parametrize(
    "metadata",
    [
        {"general.type": "mmproj"},
        {"general.type": "projector"},
        {"clip.has_vision_encoder": True},  # a typeless clip file: an encoder and no text blocks
    ],
)
def test_projectors_are_classified_by_metadata_not_name(client, tmp_path, metadata):
    model = upload(client, tiny_llama(tmp_path / "tiny.gguf").read_bytes())
    projector = make_gguf(
        tmp_path / "p.gguf",
        {"general.architecture": "clip", **metadata},
        {"v.patch_embd.weight": np.zeros((4, 3, 2, 2), np.float32)},
    )
    # the projector sorts first by name: the kind comes from the metadata alone
    create(
        client,
        model="seer",
        files={"a.gguf": upload(client, projector.read_bytes()), "b.gguf": model},
    )
    manifest = client.simulate_get("/api/tags").json["models"][0]
    shown = client.simulate_post("/api/show", json={"model": "seer"}).json
    assert manifest["name"] == "seer:latest"
    assert shown["projector_info"]["general.architecture"] == "clip"
    assert shown["model_info"]["general.architecture"] == "llama"


def test_a_typeless_llava_projector_gets_mlp(client, tmp_path):
    """As Ollama does at create: the projector is rewritten with ``clip.projector_type`` mlp,
    every other key and tensor unchanged."""
    from ollamakit.lib.gguf.reader import GGUFFile

    model = upload(client, tiny_llama(tmp_path / "tiny.gguf").read_bytes())
    weights = np.arange(48, dtype=np.float32).reshape(4, 3, 2, 2)
    projector = make_gguf(
        tmp_path / "llava.gguf",
        {
            "general.architecture": "clip",
            "clip.has_vision_encoder": True,
            "clip.vision.image_size": 336,
        },
        {"v.patch_embd.weight": weights},
    )
    original = upload(client, projector.read_bytes())
    reply = client.simulate_post(
        "/api/create",
        json={"model": "llava", "files": {"model.gguf": model, "mmproj.gguf": original}},
    )
    assert "updating GGUF projector metadata" in reply.text
    shown = client.simulate_post("/api/show", json={"model": "llava"}).json
    assert shown["projector_info"]["clip.projector_type"] == "mlp"
    assert shown["projector_info"]["clip.vision.image_size"] == 336
    manifest = client.simulate_post("/api/show", json={"model": "llava"}).json["modelfile"]
    path = [line.split(" ", 1)[1] for line in manifest.splitlines() if line.startswith("FROM ")][1]
    with GGUFFile.open(path) as gguf:
        np.testing.assert_array_equal(gguf.tensor("v.patch_embd.weight"), weights)
        assert gguf.metadata["clip.has_vision_encoder"] is True


def test_copy_and_delete_keep_the_projector(unusable_projector):
    client = unusable_projector
    assert (
        client.simulate_post(
            "/api/copy", json={"source": "seer", "destination": "twin"}
        ).status_code
        == 200
    )
    assert client.simulate_delete("/api/delete", json={"model": "seer"}).status_code == 200
    shown = client.simulate_post("/api/show", json={"model": "twin"}).json
    assert shown["projector_info"]["clip.projector_type"] == "no-such-kind"
    assert "vision" in shown["capabilities"]


@pytest.mark.parametrize(
    "change",
    [
        {"clip.vision.attention.layer_norm_epsilon": "x"},
        {"clip.vision.image_std": [0.0, 0.0, 0.0]},
        {"clip.vision.image_mean": [float("nan")] * 3},
    ],
)
def test_a_projector_with_bad_numbers_refuses_images_and_still_reads_text(client, tmp_path, change):
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing import vision as fixtures

    model = upload(client, tiny_llama(tmp_path / "tiny.gguf").read_bytes())
    with GGUFFile.open(fixtures.llava_mmproj(tmp_path / "good.gguf", 64)) as good:
        metadata = {k: v for k, v in good.metadata.items() if not k.startswith("GGUF.")}
        tensors = {t.name: np.array(good.tensor(t.name)) for t in good.tensors}
    projector = make_gguf(tmp_path / "mmproj.gguf", {**metadata, **change}, tensors)
    create(
        client,
        model="seer",
        files={"model.gguf": model, "mmproj.gguf": upload(client, projector.read_bytes())},
    )
    body = {"model": "seer", "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
    assert client.simulate_post("/api/generate", json=body).status_code == 200
    reply = client.simulate_post("/api/generate", json={**body, "images": [png()]})
    assert reply.status_code == 400
    assert reply.json == {"error": "this model is missing data required for image input"}
