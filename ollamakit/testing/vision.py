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


def gemma3_tower(
    text_embd: int,
    *,
    blocks: int = 2,
    width: int = 128,
    heads: int = 4,
    ff: int = 256,
    image_size: int = 112,
    patch: int = 14,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random SigLIP + gemma3 projector tensors in llama.cpp's names (row-major shapes)."""
    rng = np.random.default_rng(seed)
    n_patches = (image_size // patch) ** 2

    def matrix(rows, cols):  # (out, in)
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def vector(n, around=0.0, spread=0.1):
        return (around + spread * rng.standard_normal(n)).astype(np.float32)

    tensors = {
        "v.patch_embd.weight": (
            rng.standard_normal((width, 3, patch, patch)) / np.sqrt(3 * patch * patch)
        ).astype(np.float32),
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
        tensors[p + "ffn_down.weight"], tensors[p + "ffn_down.bias"] = (
            matrix(width, ff),
            vector(width),
        )
    tensors["v.post_ln.weight"], tensors["v.post_ln.bias"] = vector(width, 1.0), vector(width)
    tensors["mm.soft_emb_norm.weight"] = vector(
        width, 1.0
    )  # the +1 already in, as converters store it
    tensors["mm.input_projection.weight"] = (
        matrix(text_embd, width).T.copy() * 2
    )  # (vision, text), HF's orientation
    return tensors


def gemma3_mmproj(
    path: str | Path,
    text_embd: int,
    *,
    blocks: int = 2,
    width: int = 128,
    heads: int = 4,
    ff: int = 256,
    image_size: int = 112,
    patch: int = 14,
    seed: int = 0,
    tensors: dict | None = None,
) -> Path:
    """A gemma3 mmproj GGUF as llama.cpp's converter writes one (``general.type`` mmproj, arch
    clip); ``tensors`` replaces the random ones."""
    tensors = tensors or gemma3_tower(
        text_embd,
        blocks=blocks,
        width=width,
        heads=heads,
        ff=ff,
        image_size=image_size,
        patch=patch,
        seed=seed,
    )
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


def colour_tower(
    targets: dict, *, width: int = 64, image_size: int = 112, patch: int = 14, eps: float = 1e-6
) -> dict:
    """gemma3 projector tensors that turn a solid image of each colour in ``targets`` (an RGB
    triple -> the text embedding it should become) into that embedding: the patch product takes
    each patch's mean colour, the block adds nothing (zero output matrices), and the input
    projection maps the normed colour onto the target (least squares over the colours)."""
    n_patches = (image_size // patch) ** 2
    conv = np.zeros((width, 3, patch, patch), np.float32)
    for c in range(3):
        conv[c, c] = 1.0 / (patch * patch)
    bias = np.zeros(width, np.float32)
    bias[3] = 1.0  # a constant channel, so every colour's normed vector is well defined
    zeros, ones = np.zeros(width, np.float32), np.ones(width, np.float32)
    tensors = {
        "v.patch_embd.weight": conv,
        "v.patch_embd.bias": bias,
        "v.position_embd.weight": np.zeros((n_patches, width), np.float32),
    }
    p = "v.blk.0."
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        tensors[p + name + ".weight"], tensors[p + name + ".bias"] = (
            np.zeros((width, width), np.float32),
            zeros,
        )
    tensors.update(
        {
            p + "ln1.weight": ones,
            p + "ln1.bias": zeros,
            p + "ln2.weight": ones,
            p + "ln2.bias": zeros,
            p + "ffn_up.weight": np.zeros((width, width), np.float32),
            p + "ffn_up.bias": zeros,
            p + "ffn_down.weight": np.zeros((width, width), np.float32),
            p + "ffn_down.bias": zeros,
            "v.post_ln.weight": ones,
            "v.post_ln.bias": zeros,
            "mm.soft_emb_norm.weight": ones,
        }
    )

    def features(rgb):
        x = bias.astype(np.float64).copy()
        x[:3] = np.asarray(rgb, np.float64) / 255.0 * 2 - 1
        x = (x - x.mean()) / np.sqrt(x.var() + eps)
        return x / np.sqrt((x * x).mean() + eps)

    colours = list(targets)
    f = np.stack([features(rgb) for rgb in colours])
    e = np.stack([np.asarray(targets[rgb], np.float64) for rgb in colours])
    tensors["mm.input_projection.weight"] = (np.linalg.pinv(f) @ e).astype(
        np.float32
    )  # (vision, text)
    return tensors


COLOURS = {(255, 0, 0): " red", (0, 255, 0): " green"}


def colour_projector(path: str | Path, model: str | Path, colours: dict = COLOURS) -> Path:
    """A colour tower for a gemma3 text model (image 56, patch 14: one row per image): a solid
    image of each colour becomes the model's own (scaled) embedding of that colour's word."""
    from ollamakit.lib.gguf.dequant import dequantize
    from ollamakit.lib.gguf.reader import GGUFFile
    from ollamakit.lib.tokenizers import load_tokenizer

    with GGUFFile.open(model) as gguf:
        tokenizer = load_tokenizer(gguf.metadata)
        info = gguf.tensor_info("token_embd.weight")
        raw = gguf.raw("token_embd.weight")
        width, rows = info.shape[0], info.shape[1]
        row_bytes = info.nbytes // rows
        targets = {}
        for rgb, word in colours.items():
            [token] = tokenizer.encode(word, add_special=False)
            row = dequantize(
                raw[token * row_bytes : (token + 1) * row_bytes], info.ggml_type, (width, 1)
            ).reshape(-1)
            targets[rgb] = row * np.sqrt(width)  # as gemma3 scales a text token's embedding
    tensors = colour_tower(targets, image_size=56)
    return gemma3_mmproj(
        path, width, blocks=1, width=64, heads=4, ff=64, image_size=56, tensors=tensors
    )


def ollama_gemma3(
    path: str | Path,
    model: str | Path,
    tensors: dict,
    *,
    blocks: int = 2,
    width: int = 128,
    heads: int = 4,
    ff: int = 256,
    image_size: int = 112,
    patch: int = 14,
) -> Path:
    """A gemma3 model as Ollama's converter lays one out: the text model of ``model`` and the
    vision tower ``tensors`` (llama.cpp names; written under Ollama's) in one GGUF, with the
    ``gemma3.vision.*`` keys and no projector file."""
    from ollamakit.lib.gguf.reader import GGUFFile
    from ollamakit.lib.gguf.writer import GGUFWriter

    with GGUFFile.open(model) as gguf:
        writer = GGUFWriter(path, alignment=gguf.alignment)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
        for key, value in (
            ("block_count", blocks),
            ("embedding_length", width),
            ("feed_forward_length", ff),
            ("image_size", image_size),
            ("patch_size", patch),
            ("num_channels", 3),
            ("attention.head_count", heads),
        ):
            writer.add(f"gemma3.vision.{key}", value)
        writer.add("gemma3.vision.attention.layer_norm_epsilon", 1e-6)
        writer.add("gemma3.mm.tokens_per_image", ((image_size // patch) // 4) ** 2)
        for info in gguf.tensors:
            writer.add_tensor(
                info.name,
                lambda name=info.name: gguf.raw(name).tobytes(),
                info.ggml_type,
                info.shape,
            )
        for name, value in ollama_names(tensors).items():
            writer.add_tensor(name, value)
        return writer.write()


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def llava_mmproj(
    path: str | Path,
    text_embd: int,
    *,
    blocks: int = 3,
    width: int = 64,
    heads: int = 4,
    ff: int = 128,
    image_size: int = 56,
    patch: int = 14,
    seed: int = 0,
    scale: float = 0.05,
    pinpoints: list[tuple[int, int]] | None = None,
    feature_layers: list[int] | None = None,
) -> Path:
    """A random LLaVA ``mlp`` projector as llama.cpp's legacy converter writes one: a CLIP tower
    (class embedding, pre-norm, GELU-quick) and ``mm.0``/``mm.2`` into ``text_embd``, whose
    outputs are about ``scale`` (a text model's own embeddings are small: far larger ones make
    its answer hang on rounding). With ``pinpoints`` it is LLaVA 1.6's: the grid resolutions,
    ``spatial_unpad`` and an ``image_newline``; ``feature_layers`` names the layers whose
    inputs the projector takes (its first matrix as wide as all of them)."""
    rng = np.random.default_rng(seed)
    tensors = gemma3_tower(
        text_embd,
        blocks=blocks,
        width=width,
        heads=heads,
        ff=ff,
        image_size=image_size,
        patch=patch,
        seed=seed,
    )
    for name in ("v.patch_embd.bias", "mm.soft_emb_norm.weight", "mm.input_projection.weight"):
        del tensors[name]
    n_pos = (image_size // patch) ** 2 + 1
    tensors["v.class_embd"] = (0.3 * rng.standard_normal(width)).astype(np.float32)
    tensors["v.position_embd.weight"] = (0.3 * rng.standard_normal((n_pos, width))).astype(
        np.float32
    )
    tensors["v.pre_ln.weight"] = (1 + 0.1 * rng.standard_normal(width)).astype(np.float32)
    tensors["v.pre_ln.bias"] = (0.1 * rng.standard_normal(width)).astype(np.float32)
    features = width * len(feature_layers or [0])
    tensors["mm.0.weight"] = (
        rng.standard_normal((text_embd, features)) / np.sqrt(features)
    ).astype(np.float32)
    tensors["mm.0.bias"] = (0.1 * rng.standard_normal(text_embd)).astype(np.float32)
    tensors["mm.2.weight"] = (
        scale * rng.standard_normal((text_embd, text_embd)) / np.sqrt(text_embd)
    ).astype(np.float32)
    tensors["mm.2.bias"] = (scale * rng.standard_normal(text_embd)).astype(np.float32)
    metadata = {
        "general.architecture": "clip",
        "general.type": "mmproj",
        "general.name": "fixture llava tower",
        "clip.has_vision_encoder": True,
        "clip.has_llava_projector": True,
        "clip.projector_type": "mlp",
        "clip.use_gelu": False,
        "clip.vision.image_size": image_size,
        "clip.vision.patch_size": patch,
        "clip.vision.embedding_length": width,
        "clip.vision.feed_forward_length": ff,
        "clip.vision.projection_dim": text_embd,
        "clip.vision.block_count": blocks,
        "clip.vision.attention.head_count": heads,
        "clip.vision.attention.layer_norm_epsilon": 1e-5,
        "clip.vision.image_mean": CLIP_MEAN,
        "clip.vision.image_std": CLIP_STD,
    }
    if pinpoints:
        metadata["clip.vision.image_grid_pinpoints"] = [side for pair in pinpoints for side in pair]
        metadata["clip.vision.mm_patch_merge_type"] = "spatial_unpad"
        tensors["model.image_newline"] = (scale * rng.standard_normal(text_embd)).astype(np.float32)
    if feature_layers:
        metadata["clip.vision.feature_layer"] = list(feature_layers)
    from ollamakit.lib.gguf import ValueType

    int32 = {
        key: ValueType.INT32
        for key in ("clip.vision.image_grid_pinpoints", "clip.vision.feature_layer")
    }
    return make_gguf(path, metadata, tensors, types=int32)
