"""Helpers for the model-management tests: tiny GGUF inputs, uploads and store snapshots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ollamakit.testing.gguf_factory import make_gguf


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes: equal snapshots mean the store
    is byte-for-byte unchanged."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(root).rglob("*"))
        if path.is_file()
    }


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_gguf(path: Path, *, arch: str = "llama", file_type: int = 1, **metadata) -> bytes:
    """A small GGUF model an engine can run: one block of width 32, two query heads sharing one
    key/value head, a vocabulary of 8 (6,496 F16 parameters). Extra metadata keys by keyword,
    with ``__`` standing for ``.`` (``general__type="adapter"``)."""
    meta = {
        "general.architecture": arch,
        "general.type": "model",
        "general.file_type": file_type,
        f"{arch}.block_count": 1,
        f"{arch}.context_length": 64,
        f"{arch}.embedding_length": 32,
        f"{arch}.feed_forward_length": 32,
        f"{arch}.attention.head_count": 2,
        f"{arch}.attention.head_count_kv": 1,
    }
    meta.update({key.replace("__", "."): value for key, value in metadata.items()})
    make_gguf(path, meta, tiny_tensors(n_layers=1))
    return Path(path).read_bytes()


def tiny_tensors(
    n_layers: int = 1, width: int = 32, kv_width: int = 16, ff: int = 32, vocab: int = 8
) -> dict:
    """The tensors of ``tiny_gguf``'s model (row-major shapes, zeros in F16)."""

    def zeros(*shape):
        return np.zeros(shape, np.float16)

    tensors = {"token_embd.weight": zeros(vocab, width), "output_norm.weight": zeros(width)}
    for i in range(n_layers):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": zeros(width),
                f"blk.{i}.attn_q.weight": zeros(width, width),
                f"blk.{i}.attn_k.weight": zeros(kv_width, width),
                f"blk.{i}.attn_v.weight": zeros(kv_width, width),
                f"blk.{i}.attn_output.weight": zeros(width, width),
                f"blk.{i}.ffn_norm.weight": zeros(width),
                f"blk.{i}.ffn_gate.weight": zeros(ff, width),
                f"blk.{i}.ffn_up.weight": zeros(ff, width),
                f"blk.{i}.ffn_down.weight": zeros(width, ff),
            }
        )
    return tensors


def upload(client, data: bytes) -> str:
    digest = digest_of(data)
    response = client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert response.status_code in (200, 201), response.text
    return digest


def ndjson(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def create(client, **body) -> list[dict]:
    """POST /api/create (streaming) and return the status objects; asserts HTTP 200."""
    response = client.simulate_post("/api/create", json=body)
    assert response.status_code == 200, response.text
    return ndjson(response)


def read_manifest(models_dir: Path, name: str, tag: str = "latest") -> dict:
    path = models_dir / "manifests" / "registry.ollama.ai" / "library" / name / tag
    return json.loads(path.read_bytes())


def read_blob(models_dir: Path, digest: str) -> bytes:
    return (models_dir / "blobs" / digest.replace(":", "-")).read_bytes()
