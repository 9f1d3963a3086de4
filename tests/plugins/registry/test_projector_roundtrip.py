"""A model with a projector layer goes through push and pull whole: the projector keeps its
media type and bytes, so the pulled model still sees."""

from __future__ import annotations

import hashlib

import numpy as np

from ollamakit import manifest as mf
from ollamakit.testing.gguf_factory import make_gguf, tiny_llama


def upload(inst, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert inst.client.simulate_post(f"/api/blobs/{digest}", body=data).status_code in (200, 201)
    return digest


def test_push_and_pull_keep_the_projector(instance, local_registry, tmp_path):
    source, target = instance("source"), instance("target")
    name = f"{local_registry.host}/library/seer:latest"
    model = upload(source, tiny_llama(tmp_path / "tiny.gguf").read_bytes())
    projector = make_gguf(
        tmp_path / "mmproj.gguf",
        {
            "general.architecture": "clip",
            "general.type": "mmproj",
            "clip.has_vision_encoder": True,
            "clip.projector_type": "gemma3",
        },
        {"v.patch_embd.weight": np.ones((4, 3, 2, 2), np.float32)},
    )
    projector_digest = upload(source, projector.read_bytes())
    source.post(
        "/api/create",
        {"model": name, "files": {"model.gguf": model, "mmproj.gguf": projector_digest}},
    )
    source.push(name)
    target.pull(name)
    pulled = target.kernel.store.get(name)
    assert pulled.manifest_bytes == source.kernel.store.get(name).manifest_bytes
    [layer] = pulled.manifest.find(mf.PROJECTOR)
    assert layer.digest == projector_digest
    assert target.kernel.store.blob_path(layer.digest).read_bytes() == projector.read_bytes()
