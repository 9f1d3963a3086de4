"""Vision fixtures: random-weight gemma3 projectors written as GGUF, small enough for a unit test,
in llama.cpp's mmproj layout or with Ollama's tensor names, and solid-colour test images.

    gemma3_mmproj(path, text_embd=640)  # 2 blocks, F32, image 112, patch 14: 4 tokens per image
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .gguf_factory import make_gguf

OLLAMA_NAMES = {  # llama.cpp's name (a substring) -> Ollama's
    "v.patch_embd": "v.patch_embedding",
    "v.position_embd": "v.position_embedding",
    "v.post_ln": "v.post_layernorm",
    ".ln1": ".layer_norm1",
    ".ln2": ".layer_norm2",
    ".attn_out": ".attn_output",
    ".ffn_up": ".mlp.fc1",
    ".ffn_down": ".mlp.fc2",
    "mm.input_projection": "mm.mm_input_projection",
    "mm.soft_emb_norm": "mm.mm_soft_emb_norm",
}


def gemma3_tower(text_embd: int, *, blocks: int = 2, width: int = 128, heads: int = 4, ff: int = 256,
                 image_size: int = 112, patch: int = 14, seed: int = 0) -> dict[str, np.ndarray]:
    """Random SigLIP + gemma3 projector tensors in llama.cpp's names (row-major shapes)."""
    rng = np.random.default_rng(seed)
    n_patches = (image_size // patch) ** 2

    def matrix(rows, cols):  # (out, in)
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def vector(n, around=0.0, spread=0.1):
        return (around + spread * rng.standard_normal(n)).astype(np.float32)

    tensors = {
        "v.patch_embd.weight": (rng.standard_normal((width, 3, patch, patch)) / np.sqrt(3 * patch * patch)).astype(np.float32),
        "v.patch_embd.bias": vector(width),
        "v.position_embd.weight": vector(n_patches * width, spread=0.3).reshape(n_patches, width),
    }
    for i in range(blocks):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[p + name + ".weight"] = matrix(width, width)
            tensors[p + name + ".bias"] = vector(width)
        tensors[p + "ln1.weight"], tensors[p + "ln1.bias"] = vector(width, 1.0), vector(width)
        tensors[p + "ln2.weight"], tensors[p + "ln2.bias"] = vector(width, 1.0), vector(width)
        tensors[p + "ffn_up.weight"], tensors[p + "ffn_up.bias"] = matrix(ff, width), vector(ff)
        tensors[p + "ffn_down.weight"], tensors[p + "ffn_down.bias"] = matrix(width, ff), vector(width)
    tensors["v.post_ln.weight"], tensors["v.post_ln.bias"] = vector(width, 1.0), vector(width)
    tensors["mm.soft_emb_norm.weight"] = vector(width, 1.0)  # the +1 already in, as converters store it
    tensors["mm.input_projection.weight"] = matrix(text_embd, width).T.copy() * 2  # (vision, text), HF's orientation
    return tensors


def gemma3_mmproj(path: str | Path, text_embd: int, *, blocks: int = 2, width: int = 128, heads: int = 4, ff: int = 256,
                  image_size: int = 112, patch: int = 14, seed: int = 0, tensors: dict | None = None) -> Path:
    """A gemma3 mmproj GGUF as llama.cpp's converter writes one (``general.type`` mmproj, arch
    clip); ``tensors`` replaces the random ones."""
    tensors = tensors or gemma3_tower(text_embd, blocks=blocks, width=width, heads=heads, ff=ff,
                                      image_size=image_size, patch=patch, seed=seed)
    metadata = {
        "general.architecture": "clip",
        "general.type": "mmproj",
        "general.name": "fixture gemma3 tower",
        "clip.has_vision_encoder": True,
        "clip.projector_type": "gemma3",
        "clip.use_gelu": True,
        "clip.vision.image_size": image_size,
        "clip.vision.patch_size": patch,
        "clip.vision.embedding_length": width,
        "clip.vision.feed_forward_length": ff,
        "clip.vision.projection_dim": text_embd,
        "clip.vision.block_count": blocks,
        "clip.vision.attention.head_count": heads,
        "clip.vision.attention.layer_norm_epsilon": 1e-6,
        "clip.vision.image_mean": [0.5, 0.5, 0.5],
        "clip.vision.image_std": [0.5, 0.5, 0.5],
    }
    return make_gguf(path, metadata, tensors)


def ollama_names(tensors: dict) -> dict:
    """The same tensors under the names Ollama's gemma3 converter gives them."""
    renamed = {}
    for name, value in tensors.items():
        for ours, theirs in OLLAMA_NAMES.items():
            name = name.replace(ours, theirs)
        renamed[name] = value
    return renamed


def solid_png(colour, size=(64, 48)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, tuple(colour)).save(out, "PNG")
    return out.getvalue()


def pattern_png(size=(150, 100), seed: int = 0) -> bytes:
    """A random RGB picture (a letterbox and a resize in both directions)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()
