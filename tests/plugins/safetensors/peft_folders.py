"""Tiny F32 Hugging Face decoders (llama, qwen2, gemma3) with seeded PEFT LoRA adapters, and
the same models with each adapter merged into its weights in Hugging Face's own layout; and
seeded adapters for a GGUF base (the tiny qwen3 and gemma2 of ``ollamakit.testing.architectures``,
as llama.cpp's converter writes them), merged into a copy of that GGUF.

The adapters are written as PEFT's ``save_pretrained`` writes them: ``adapter_config.json``
(``peft_type``, ``r``, ``lora_alpha``, ``target_modules``, ``use_rslora``, ...) and
``adapter_model.safetensors`` with keys ``base_model.model.model.layers.N.<module>.lora_A.weight``
(r × in) and ``lora_B.weight`` (out × r). Merging is PEFT's: W + scale · B A, with scale
``lora_alpha / r`` (``lora_alpha / √r`` under rsLoRA), before any GGUF permutation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from tiny_folders import gemma3_folder, qwen2_folder

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def module_path(name: str) -> str:
    return (
        f"self_attn.{name}" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else f"mlp.{name}"
    )


def decoder_folder(arch: str, folder: Path, seed: int = 0) -> Path:
    """A tiny F32 model folder of ``arch``; llama is qwen2's folder without biases, under
    ``LlamaForCausalLM`` with 4 query and 2 key/value heads, so q and k are permuted."""
    if arch == "gemma3":
        gemma3_folder(folder, seed)
    else:
        qwen2_folder(folder, seed)
    weights = {
        name: np.ascontiguousarray(w, dtype=np.float32)
        for name, w in load_file(folder / "model.safetensors").items()
    }
    config = json.loads((folder / "config.json").read_text())
    # what transformers needs to load the folder as well (the recorder runs it)
    config["model_type"] = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3_text"}[arch]
    config["torch_dtype"] = "float32"
    if arch == "gemma3":
        config["query_pre_attn_scalar"] = config["head_dim"]
    if arch == "llama":
        weights = {name: w for name, w in weights.items() if not name.endswith(".bias")}
        config["architectures"] = ["LlamaForCausalLM"]
        config["rope_theta"] = 10000.0
    (folder / "config.json").write_text(json.dumps(config))
    save_file(weights, str(folder / "model.safetensors"))
    return folder


def peft_adapter(
    model: Path,
    folder: Path,
    *,
    seed: int = 1,
    rank: int = 4,
    alpha: float = 8.0,
    modules=MODULES,
    layers=None,
    ranks: dict | None = None,
    config: dict | None = None,
    layers_prefix: str = "model.layers",
) -> dict:
    """A seeded PEFT adapter for the model folder ``model``; returns its tensors.
    ``layers_prefix``: where the text layers are (``language_model.model.layers`` in a
    multimodal model)."""
    weights = load_file(model / "model.safetensors")
    n_layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    shapes = {
        (layer, name): weights[f"model.layers.{layer}.{module_path(name)}.weight"].shape
        for layer in range(n_layers)
        for name in modules
    }
    return _write_adapter(
        shapes, folder, str(model), seed, rank, alpha, modules, layers, ranks, config, layers_prefix
    )


def _write_adapter(
    shapes, folder, base_name, seed, rank, alpha, modules, layers, ranks, config, layers_prefix
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_layers = 1 + max(layer for layer, _ in shapes)
    tensors = {}
    for layer in range(n_layers) if layers is None else layers:
        for name in modules:
            out_dim, in_dim = shapes[layer, name]
            r = (ranks or {}).get(name, rank)
            key = f"base_model.model.{layers_prefix}.{layer}.{module_path(name)}"
            tensors[f"{key}.lora_A.weight"] = (
                rng.standard_normal((r, in_dim)) / np.sqrt(in_dim)
            ).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (
                0.5 * rng.standard_normal((out_dim, r)) / np.sqrt(r)
            ).astype(np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    values = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": list(modules),
        "use_rslora": False,
        "use_dora": False,
        "fan_in_fan_out": False,
        "bias": "none",
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }
    values.update(config or {})
    (folder / "adapter_config.json").write_text(json.dumps(values))
    return tensors


def merged_folder(model: Path, adapter: Path, out: Path) -> Path:
    """``model`` with the adapter merged into its weights, as PEFT's merge_and_unload does it."""
    shutil.copytree(model, out)
    config = json.loads((adapter / "adapter_config.json").read_text())
    weights = load_file(model / "model.safetensors")
    lora = load_file(adapter / "adapter_model.safetensors")
    for key in lora:
        if not key.endswith(".lora_A.weight"):
            continue
        stem = key.removesuffix(".lora_A.weight")
        a, b = lora[key].astype(np.float64), lora[stem + ".lora_B.weight"].astype(np.float64)
        rank = a.shape[0]
        scale = config["lora_alpha"] / (np.sqrt(rank) if config.get("use_rslora") else rank)
        # the text layers of a multimodal model lose ``language_model.``, as llama.cpp's do
        target = stem.removeprefix("base_model.model.").replace("language_model.", "") + ".weight"
        weights[target] = (weights[target].astype(np.float64) + scale * b @ a).astype(np.float32)
    save_file(weights, str(out / "model.safetensors"))
    return out


GGUF_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


def gguf_peft_adapter(base: Path, folder: Path, *, seed: int = 1, rank: int = 4, alpha=8.0):
    """A seeded PEFT adapter for every projection of a GGUF base, shaped by its tensors."""
    from ollamakit.lib.gguf import GGUFFile

    with GGUFFile.open(base) as gguf:
        n_layers = gguf.metadata[f"{gguf.architecture}.block_count"]
        shapes = {
            (layer, name): tuple(gguf.tensor_info(f"blk.{layer}.{gguf_name}.weight").shape)[::-1]
            for layer in range(n_layers)
            for name, gguf_name in GGUF_NAMES.items()
        }
    return _write_adapter(
        shapes, folder, str(base), seed, rank, alpha, MODULES, None, None, None, "model.layers"
    )


def float32_gguf(base: Path, out: Path, deltas: dict | None = None) -> Path:
    """``base`` with its float16 matrices as float32 (the same values), and ``deltas`` (GGUF
    name -> row-major array) added to theirs: a float16 weight would round the activations it
    multiplies to float16 as well, which is no part of what an adapter test compares."""
    from ollamakit.lib.gguf import GGUFFile, GGUFWriter

    deltas = deltas or {}
    with GGUFFile.open(base) as gguf:
        writer = GGUFWriter(out, alignment=gguf.alignment)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
        for info in gguf.tensors:
            values = gguf.tensor(info.name).astype(np.float64)
            values = values + deltas.get(info.name, 0.0)
            writer.add_tensor(info.name, values.astype(np.float32))
        writer.write()
    return out


def merged_gguf(base: Path, adapter: Path, out: Path) -> Path:
    """``float32_gguf(base)`` with the adapter merged into its weights, B A added in Hugging
    Face's row order: right for an architecture whose converter leaves q and k rows as they are."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    lora = load_file(adapter / "adapter_model.safetensors")
    deltas = {}
    for key in lora:
        if key.endswith(".lora_A.weight"):
            stem = key.removesuffix(".lora_A.weight")
            a, b = lora[key].astype(np.float64), lora[stem + ".lora_B.weight"].astype(np.float64)
            layer, module = stem.split(".layers.")[1].split(".", 1)
            name = f"blk.{layer}.{GGUF_NAMES[module.rsplit('.', 1)[-1]]}.weight"
            deltas[name] = config["lora_alpha"] / a.shape[0] * (b @ a)
    return float32_gguf(base, out, deltas)


def mlx_adapter(
    model: Path,
    folder: Path,
    *,
    seed: int = 1,
    rank: int = 4,
    scale: float = 2.0,
    modules=MODULES,
    layers_prefix: str = "model.layers",
    config: dict | None = None,
) -> dict:
    """A seeded adapter for the model folder ``model`` as mlx-lm's LoRA training saves one:
    ``adapters.safetensors`` with the model's own parameter paths,
    ``model.layers.N.<module>.lora_a`` (in × r) and ``.lora_b`` (r × out), and
    ``adapter_config.json`` with ``fine_tune_type``, ``num_layers`` and ``lora_parameters``
    (``rank``, ``scale``, ``dropout``)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = load_file(model / "model.safetensors")
    n_layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(n_layers):
        for name in modules:
            out_dim, in_dim = weights[f"model.layers.{layer}.{module_path(name)}.weight"].shape
            key = f"{layers_prefix}.{layer}.{module_path(name)}"
            tensors[f"{key}.lora_a"] = (
                rng.standard_normal((in_dim, rank)) / np.sqrt(in_dim)
            ).astype(np.float32)
            tensors[f"{key}.lora_b"] = (
                0.5 * rng.standard_normal((rank, out_dim)) / np.sqrt(rank) / scale
            ).astype(np.float32)
    save_file(tensors, str(folder / "adapters.safetensors"), metadata={"format": "mlx"})
    values = {
        "fine_tune_type": "lora",
        "num_layers": n_layers,
        "lora_parameters": {"rank": rank, "scale": scale, "dropout": 0.0},
        "model": str(model),
    }
    values.update(config or {})
    (folder / "adapter_config.json").write_text(json.dumps(values))
    return tensors


def mlx_merged_folder(model: Path, adapter: Path, out: Path) -> Path:
    """``model`` with an mlx-lm adapter fused into its weights as mlx-lm's ``LoRALinear.fuse``
    does it: W + scale · Bᵀ Aᵀ, with A (in × r) and B (r × out) as saved."""
    shutil.copytree(model, out)
    scale = json.loads((adapter / "adapter_config.json").read_text())["lora_parameters"]["scale"]
    weights = load_file(model / "model.safetensors")
    lora = load_file(adapter / "adapters.safetensors")
    for key in lora:
        if key.endswith(".lora_a"):
            stem = key.removesuffix(".lora_a")
            a, b = lora[key].astype(np.float64), lora[stem + ".lora_b"].astype(np.float64)
            target = stem.replace("language_model.", "") + ".weight"
            delta = scale * b.T @ a.T
            weights[target] = (weights[target].astype(np.float64) + delta).astype(np.float32)
    save_file(weights, str(out / "model.safetensors"))
    return out
