"""PEFT LoRA adapters (``adapter_config.json`` + ``adapter_model.safetensors``, or PyTorch's
``adapter_model.bin``, read without running its pickle: ``torch_pickle``) to llama.cpp's
GGUF LoRA format, for a base model of the ``llama``, ``qwen2``, ``qwen3``, ``gemma2`` or
``gemma3`` architecture.

    plan = plan_adapter(folder, base)   # base: the model's parsed GGUF header; every check
    plan.write(path)

PEFT stores, for each adapted ``nn.Linear`` of weight W (out × in), ``lora_A.weight`` (r × in)
and ``lora_B.weight`` (out × r), and computes ``W x + (lora_alpha / r) · B A x``. GGUF keeps the
same two matrices under the base tensor's name (``blk.N.attn_q.weight.lora_a`` / ``.lora_b``:
numpy shapes are unchanged, GGUF's ``ne`` is their reverse) with ``adapter.lora.alpha``, and
the engine scales by alpha / rank, the rank read from the tensors.

The one transformation is llama's: its q and k rows are permuted for GGUF (``permute_for_llama``),
so the merged product B·A must have its rows permuted the same way, which is B's rows; A (the
input side) stays. qwen2, qwen3, gemma2 and gemma3 rotate the two halves of each head, so
llama.cpp's converter leaves their weights in Hugging Face's order, and their adapters too.

A multimodal model's text layers are named under ``language_model`` (Gemma3ForConditionalGeneration:
``language_model.model.layers.N`` before transformers 4.52, ``model.language_model.layers.N``
after); llama.cpp's converter drops the ``language_model.`` part, and so does this one. LoRA on
the vision tower or its projector is refused: the tower runs without adapters.

rsLoRA (scale alpha / √r) is written exactly: the alpha written makes alpha / r the PEFT scale
for the rank in the config, and a module of another rank (``rank_pattern``) has the difference
folded into its B. What cannot be expressed as a LoRA on the model's matrices is refused: DoRA,
``modules_to_save``, ``fan_in_fan_out``, LoRA biases, per-module alphas, adapters of the token
embedding or the output layer, and any tensor whose shape does not fit the base.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFWriter, ValueType

from .decoders import _DECODER_LAYER, permute_for_llama
from .folder import ModelFolder
from .reader import FLOAT_DTYPES, to_float32

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")
MAX_RANK = 4096
MAX_ALPHA = 1e6
# PEFT's saved names (the adapter name is dropped on save): base_model.model.<module>.lora_A.weight,
# the text layers of a multimodal model under its language_model
_KEY = re.compile(
    r"^base_model\.model\.(?:model\.|language_model\.model\.|model\.language_model\.)"
    r"layers\.(\d+)\.([a-z_.]+)\.lora_([AB])\.weight$"
)
_VISION = re.compile(
    r"^base_model\.model\.(?:model\.)?(?:vision_tower|vision_model|multi_modal_projector)\."
)
_ADAPTABLE = {part: name for part, name in _DECODER_LAYER.items() if part.endswith("_proj")}
# Settings that change what the adapter computes in ways a GGUF LoRA cannot carry.
_REFUSED = {
    "use_dora": "DoRA adapters (use_dora) are not supported",
    "fan_in_fan_out": "adapters with fan_in_fan_out are not supported (no architecture ollamakit converts stores its weights transposed)",
    "modules_to_save": "adapters with modules_to_save (fully trained layers) are not supported",
    "alpha_pattern": "adapters with per-module alphas (alpha_pattern) are not supported",
    "layer_replication": "adapters with layer_replication are not supported",
    "lora_bias": "adapters with LoRA biases (lora_bias) are not supported",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens) is not supported",
    "target_parameters": "adapters of parameters (target_parameters) are not supported",
    "trainable_token_indices": "adapters that train token embeddings (trainable_token_indices) are not supported",
    "use_qalora": "QA-LoRA adapters (use_qalora) are not supported",
    "use_bdlora": "block-diagonal LoRA adapters (use_bdlora) are not supported",
    "arrow_config": "routed LoRA adapters (arrow_config) are not supported",
}


@dataclass
class AdapterTensor:
    name: str  # the GGUF name: <base tensor>.lora_a / .lora_b
    source: str
    permute_heads: int = 0  # llama's q/k row permutation of B, by this many heads
    scale: float = 1.0  # folded into B (rsLoRA at a rank other than the config's)


@dataclass
class AdapterConversion:
    folder: ModelFolder
    metadata: dict[str, tuple[object, int]]
    tensors: list[AdapterTensor]

    def write(self, path: Path) -> Path:
        writer = GGUFWriter(path)
        for key, (value, kind) in self.metadata.items():
            writer.add(key, value, kind)
        for tensor in self.tensors:
            info = self.folder.info(tensor.source)
            f32 = tensor.scale != 1.0 or info.dtype in ("F32", "F64")
            writer.add_tensor(
                tensor.name,
                _loader(self.folder, tensor, info.dtype, f32),
                "F32" if f32 else info.dtype,
                tuple(reversed(info.shape)),
            )
        return writer.write()


def _loader(folder: ModelFolder, tensor: AdapterTensor, dtype: str, f32: bool):
    def load():
        data = folder.raw(tensor.source)
        if f32:
            data = to_float32(data, dtype, tensor.source) * np.float32(tensor.scale)
        if tensor.permute_heads:
            data = permute_for_llama(tensor.permute_heads)(data)
        return np.ascontiguousarray(data, dtype=np.float32 if f32 else data.dtype)

    return load


@dataclass
class PeftAdapter:
    """What an adapter folder holds, checked without its base."""

    r: int
    alpha: float
    rslora: bool
    rank_pattern: bool  # some modules have other ranks
    halves: dict[tuple[int, str], dict[str, str]]  # (layer, GGUF part) -> {"A": name, "B": name}


def read_adapter(folder: ModelFolder) -> PeftAdapter:
    """Every check that needs no base: the config, the file, the tensor names and types."""
    r, alpha, rslora, rank_pattern = _config(folder)
    names = sorted(n for n in folder.paths if n.lower().endswith((".safetensors", ".bin")))
    if names not in (["adapter_model.safetensors"], ["adapter_model.bin"]):
        raise InvalidModelFile(
            "a PEFT adapter is one adapter_model.safetensors (or adapter_model.bin) file with its "
            "adapter_config.json"
        )
    if not folder.tensors and names == ["adapter_model.bin"]:
        folder.open_checkpoint("adapter_model.bin")
    elif not folder.tensors:
        folder.open_tensors()
    halves: dict[tuple[int, str], dict[str, str]] = {}
    for name in folder.tensors:
        match = _KEY.match(name)
        if match is None:
            raise InvalidModelFile(_unexpected(name))
        layer, part, half = match.groups()
        if part not in _ADAPTABLE:
            raise InvalidModelFile(f"adapter tensor {name!r}: LoRA on {part} is not supported")
        info = folder.info(name)
        if info.dtype not in FLOAT_DTYPES and info.dtype != "F64":
            raise InvalidModelFile(
                f"adapter tensor {name!r} has dtype {info.dtype}; only float adapters convert"
            )
        if len(info.shape) != 2 or 0 in info.shape:
            raise InvalidModelFile(f"adapter tensor {name!r} is not a matrix")
        found = halves.setdefault((int(layer), _ADAPTABLE[part]), {})
        if half in found:  # the same module under two spellings of the text layers
            raise InvalidModelFile(
                f"adapter tensors {found[half]!r} and {name!r} adapt the same matrix"
            )
        found[half] = name
    if not halves:
        raise InvalidModelFile("the adapter has no LoRA tensors")
    for (layer, part), found in sorted(halves.items()):
        if set(found) != {"A", "B"}:
            missing = "lora_B" if "A" in found else "lora_A"
            raise InvalidModelFile(f"the adapter of layer {layer}'s {part} lacks its {missing}")
        rank = folder.info(found["A"]).shape[0]
        if folder.info(found["B"]).shape[1] != rank or not 1 <= rank <= MAX_RANK:
            raise InvalidModelFile(
                f"the lora_A and lora_B of layer {layer}'s {part} disagree on their rank"
            )
        if rank != r and not rank_pattern:
            raise InvalidModelFile(
                f"{found['A']} has rank {rank}, adapter_config.json says r = {r}"
            )
    return PeftAdapter(r, alpha, rslora, rank_pattern, halves)


def plan_adapter(folder: ModelFolder, base) -> AdapterConversion:
    """Check a PEFT adapter folder against ``base`` (a parsed GGUF header) and plan its GGUF."""
    arch = base.architecture or ""
    if arch not in ARCHITECTURES:
        raise InvalidModelFile(
            f'safetensors adapters convert for {", ".join(ARCHITECTURES)} models; the model is "{arch}"'
        )
    adapter = read_adapter(folder)
    base_shapes = {info.name: tuple(info.shape) for info in base.tensors}  # GGUF ne: (in, out)
    heads = _llama_heads(base) if arch == "llama" else {}
    # GGUF scales by alpha / rank: rsLoRA's alpha / sqrt(r) is alpha * sqrt(r) / r
    alpha = adapter.alpha * math.sqrt(adapter.r) if adapter.rslora else adapter.alpha
    tensors = []
    for (layer, part), found in sorted(adapter.halves.items()):
        target = f"blk.{layer}.{part}.weight"
        if target not in base_shapes:
            raise InvalidModelFile(f"the adapter changes {target}, which the model does not have")
        (rank, n_in), (n_out, _) = folder.info(found["A"]).shape, folder.info(found["B"]).shape
        if (n_in, n_out) != base_shapes[target][:2] or len(base_shapes[target]) != 2:
            want_in, want_out = base_shapes[target][:2]
            raise InvalidModelFile(
                f"the adapter of {target} does not fit the model: lora_A is {rank} × {n_in} and lora_B "
                f"{n_out} × {rank}, for a weight of {want_out} × {want_in}"
            )
        n_heads = heads.get(part, 0)
        if n_heads and n_out % (2 * n_heads):
            raise InvalidModelFile(
                f"{target} has {n_out} rows, not a whole number of {n_heads} heads"
            )
        wanted = adapter.alpha / (math.sqrt(rank) if adapter.rslora else rank)
        fold = wanted * rank / alpha  # 1 unless rsLoRA meets a module of another rank
        fold = 1.0 if math.isclose(fold, 1.0, rel_tol=1e-12) else fold
        tensors.append(AdapterTensor(f"{target}.lora_a", found["A"]))
        tensors.append(AdapterTensor(f"{target}.lora_b", found["B"], n_heads, fold))
    metadata = {
        "general.architecture": (arch, ValueType.STRING),
        "general.type": ("adapter", ValueType.STRING),
        "adapter.type": ("lora", ValueType.STRING),
        "adapter.lora.alpha": (float(alpha), ValueType.FLOAT32),
    }
    return AdapterConversion(folder, metadata, tensors)


def _config(folder: ModelFolder) -> tuple[int, float, bool, bool]:
    """(r, lora_alpha, use_rslora, whether a rank_pattern gives some modules other ranks)"""
    values = folder.json("adapter_config.json")
    if values is None:
        raise InvalidModelFile("the adapter folder has no adapter_config.json")
    kind = values.get("peft_type", "LORA")
    if kind != "LORA":
        raise InvalidModelFile(
            f"only LoRA adapters are supported; adapter_config.json says peft_type {kind!r}"
        )
    for key, why in _REFUSED.items():
        if values.get(key):
            raise InvalidModelFile(why)
    if values.get("bias", "none") not in (None, "none"):
        raise InvalidModelFile(
            f"adapters that train the model's biases (bias {_brief(values['bias'])}) are not supported"
        )
    r, alpha = values.get("r", 8), values.get("lora_alpha", 8)  # PEFT's defaults
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= MAX_RANK:
        raise InvalidModelFile(
            f"adapter_config.json: r = {_brief(r)} is not a rank from 1 to {MAX_RANK}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < MAX_ALPHA:
        raise InvalidModelFile(
            f"adapter_config.json: lora_alpha = {_brief(alpha)} is not a number in (0, {MAX_ALPHA:g})"
        )
    rslora = values.get("use_rslora", False)
    if not isinstance(rslora, bool):
        raise InvalidModelFile("adapter_config.json: use_rslora must be true or false")
    return r, float(alpha), rslora, bool(values.get("rank_pattern"))


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unexpected(name: str) -> str:
    if _VISION.match(name):
        return (
            f"adapter tensor {name!r}: LoRA on the vision tower or its projector is not supported"
        )
    if "lora_embedding" in name or ".embed_tokens." in name or ".lm_head." in name:
        return f"adapter tensor {name!r}: LoRA on the token embedding or the output layer is not supported"
    if "lora_magnitude_vector" in name:
        return "DoRA adapters are not supported"
    if ".modules_to_save." in name:
        return "adapters with modules_to_save (fully trained layers) are not supported"
    if name.endswith(".bias"):
        return f"adapter tensor {name!r}: LoRA biases are not supported"
    return f"adapter tensor {name!r} is not a PEFT LoRA tensor of a decoder layer"


def _llama_heads(base) -> dict[str, int]:
    """The head counts llama's q/k permutation needs, from the base's own metadata."""
    meta = base.metadata
    n_head = meta.get("llama.attention.head_count")
    n_head_kv = meta.get("llama.attention.head_count_kv", n_head)
    for value in (n_head, n_head_kv):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
            raise InvalidModelFile(
                "the base model's llama.attention.head_count is missing or out of range"
            )
    return {"attn_q": n_head, "attn_k": n_head_kv}
