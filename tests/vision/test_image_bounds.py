"""The work an image request may cost is bounded by what could be answered: images that cannot
fit the context are refused before the tower runs over them."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ollamakit.testing import vision as fixtures
from ollamakit.testing.gguf_factory import tiny_llama

pytest.importorskip("ollamakit_engine")


@pytest.fixture
def seer(client, kernel, tmp_path):
    """A tiny llama with a LLaVA tower whose image takes 16 rows."""
    files = {}
    for name, path in (
        ("tiny.gguf", tiny_llama(tmp_path / "tiny.gguf", context_length=512)),
        ("mmproj.gguf", fixtures.llava_mmproj(tmp_path / "mmproj.gguf", 64)),
    ):
        data = path.read_bytes()
        files[name] = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.simulate_post(f"/api/blobs/{files[name]}", body=data).status_code == 201
    reply = client.simulate_post("/api/create", json={"model": "seer", "files": files})
    assert reply.status_code == 200, reply.text
    return client, kernel


def vision_of(kernel):
    [entry] = kernel.scheduler._loaded.values()
    return entry.runner.vision


def test_images_past_the_context_are_not_encoded(seer):
    client, kernel = seer
    # 40 different images of 16 rows each: at most 3 fit a context of 64
    images = [
        base64.b64encode(fixtures.solid_png((n, 255 - n, 7), (8, 8))).decode() for n in range(40)
    ]
    body = {
        "model": "seer",
        "prompt": "Count them.",
        "images": images,
        "stream": False,
        "options": {"num_ctx": 64, "num_predict": 1},
    }
    reply = client.simulate_post("/api/generate", json=body)
    assert reply.status_code == 400
    assert reply.json["error"] == (
        "the prompt with its 40 image(s) takes more than the context window of 64 tokens; "
        "send fewer images or raise num_ctx"
    )
    assert vision_of(kernel).encoded <= 4
    chat = {
        "model": "seer",
        "messages": [{"role": "user", "content": "Count them.", "images": images}],
        "stream": False,
        "options": {"num_ctx": 64, "num_predict": 1},
    }
    assert client.simulate_post("/api/chat", json=chat).status_code == 400
    assert vision_of(kernel).encoded <= 8
