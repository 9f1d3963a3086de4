"""PEFT LoRA adapters (``adapter_config.json`` + ``adapter_model.safetensors``, or PyTorch's
``adapter_model.bin``, read without running its pickle: ``torch_pickle``) and mlx-lm's
(``adapter_config.json`` + ``adapters.safetensors``) to llama.cpp's GGUF LoRA format, for a
base model of the ``llama``, ``qwen2``, ``qwen3``, ``gemma2`` or ``gemma3`` architecture.

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

mlx-lm names its matrices ``model.layers.N.<module>.lora_a`` (in × r) and ``.lora_b`` (r × out),
the transposes of PEFT's, and computes ``W x + scale · (x A) B`` with the config's
``lora_parameters.scale`` (its fused model is ``W + scale · Bᵀ Aᵀ``): both are transposed on
the way, and alpha is written as scale × rank. (Ollama's converter reads ``lora_alpha`` or
``lora_parameters.alpha`` instead and drops ``scale``, so an mlx-lm adapter runs there at another
strength than mlx-lm trained it at.) DoRA (``fine_tune_type`` dora) and full fine-tunes are
refused.

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
# mlx-lm's names: the model's own parameter paths (gemma3's text layers under language_model)
_MLX_KEY = re.compile(r"^(?:language_model\.)?model\.layers\.(\d+)\.([a-z_.]+)\.lora_(a|b)$")
MLX_WEIGHTS = "adapters.safetensors"
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
    transpose: bool = False  # stored the other way round (mlx-lm's)


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
                tuple(info.shape) if tensor.transpose else tuple(reversed(info.shape)),
            )
        return writer.write()


def _loader(folder: ModelFolder, tensor: AdapterTensor, dtype: str, f32: bool):
    def load():
        data = folder.raw(tensor.source)
        if f32:
            data = to_float32(data, dtype, tensor.source) * np.float32(tensor.scale)
        if tensor.transpose:
            data = data.T
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
    mlx: bool = False  # mlx-lm's: A is in × r and B r × out

    def shapes(self, folder: ModelFolder, found: dict[str, str]) -> tuple[int, int, int, int]:
        """(A's rank, inputs, outputs, B's rank) of one module's pair."""
        a, b = folder.info(found["A"]).shape, folder.info(found["B"]).shape
        if self.mlx:
            return a[1], a[0], b[1], b[0]
        return a[0], a[1], b[0], b[1]


def read_adapter(folder: ModelFolder) -> PeftAdapter:
    """Every check that needs no base: the config, the file, the tensor names and types."""
    names = sorted(n for n in folder.paths if n.lower().endswith((".safetensors", ".bin")))
    mlx = names == [MLX_WEIGHTS]
    if mlx:
        r, alpha, rslora, rank_pattern = _mlx_config(folder)
    else:
        r, alpha, rslora, rank_pattern = _config(folder)
    if names not in (["adapter_model.safetensors"], ["adapter_model.bin"], [MLX_WEIGHTS]):
        raise InvalidModelFile(
            "a PEFT adapter is one adapter_model.safetensors (or adapter_model.bin) file with its "
            "adapter_config.json; an mlx-lm adapter is adapters.safetensors with its "
            "adapter_config.json"
        )
    if not folder.tensors and names == ["adapter_model.bin"]:
        folder.open_checkpoint("adapter_model.bin")
    elif not folder.tensors:
        folder.open_tensors()
    halves: dict[tuple[int, str], dict[str, str]] = {}
    for name in folder.tensors:
        match = (_MLX_KEY if mlx else _KEY).match(name)
        if match is None:
            raise InvalidModelFile(_unexpected(name, mlx))
        layer, part, half = match.groups()
        half = half.upper()
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
    adapter = PeftAdapter(r, alpha, rslora, rank_pattern, halves, mlx)
    for (layer, part), found in sorted(halves.items()):
        if set(found) != {"A", "B"}:
            missing = (
                ("lora_b" if mlx else "lora_B") if "A" in found else ("lora_a" if mlx else "lora_A")
            )
            raise InvalidModelFile(f"the adapter of layer {layer}'s {part} lacks its {missing}")
        rank, _, _, rank_b = adapter.shapes(folder, found)
        if rank_b != rank or not 1 <= rank <= MAX_RANK:
            raise InvalidModelFile(
                f"the lora_A and lora_B of layer {layer}'s {part} disagree on their rank"
            )
        if rank != r and not rank_pattern:
            raise InvalidModelFile(
                f"{found['A']} has rank {rank}, adapter_config.json says r = {r}"
            )
    return adapter


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
        rank, n_in, n_out, _ = adapter.shapes(folder, found)
        if (n_in, n_out) != base_shapes[target][:2] or len(base_shapes[target]) != 2:
            want_in, want_out = base_shapes[target][:2]
            raise InvalidModelFile(
                f"the adapter of {target} does not fit the model: it maps {n_in} inputs to "
                f"{n_out} outputs at rank {rank}, for a weight of {want_out} × {want_in}"
            )
        n_heads = heads.get(part, 0)
        if n_heads and n_out % (2 * n_heads):
            raise InvalidModelFile(
                f"{target} has {n_out} rows, not a whole number of {n_heads} heads"
            )
        wanted = adapter.alpha / (math.sqrt(rank) if adapter.rslora else rank)
        fold = wanted * rank / alpha  # 1 unless rsLoRA meets a module of another rank
        fold = 1.0 if math.isclose(fold, 1.0, rel_tol=1e-12) else fold
        tensors.append(AdapterTensor(f"{target}.lora_a", found["A"], transpose=adapter.mlx))
        tensors.append(
            AdapterTensor(f"{target}.lora_b", found["B"], n_heads, fold, transpose=adapter.mlx)
        )
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


def _mlx_config(folder: ModelFolder) -> tuple[int, float, bool, bool]:
    """mlx-lm's ``adapter_config.json``: ``fine_tune_type`` and ``lora_parameters`` (``rank``,
    ``scale``), as its ``load_adapters`` reads them; returned as PEFT's (r, alpha, ...), the
    alpha being the one GGUF's alpha / rank turns into the scale."""
    values = folder.json("adapter_config.json")
    if values is None:
        raise InvalidModelFile("the adapter folder has no adapter_config.json")
    kind = values.get("fine_tune_type", "lora")
    if kind == "dora" or values.get("use_dora"):
        raise InvalidModelFile("DoRA adapters are not supported")
    if kind != "lora":
        raise InvalidModelFile(
            f"only LoRA adapters are supported; adapter_config.json says fine_tune_type {_brief(kind)}"
        )
    parameters = values.get("lora_parameters")
    if not isinstance(parameters, dict):
        raise InvalidModelFile("adapter_config.json has no lora_parameters")
    r, scale = parameters.get("rank"), parameters.get("scale")
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= MAX_RANK:
        raise InvalidModelFile(
            f"adapter_config.json: lora_parameters.rank = {_brief(r)} is not a rank from 1 to {MAX_RANK}"
        )
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or not 0 < abs(scale) * r < MAX_ALPHA  # GGUF's alpha is scale × rank, divided by
    ):
        raise InvalidModelFile(
            f"adapter_config.json: lora_parameters.scale = {_brief(scale)} is not a usable number"
        )
    return r, float(scale) * r, False, False


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unexpected(name: str, mlx: bool = False) -> str:
    if mlx:
        if name.endswith(".m"):
            return "DoRA adapters are not supported"
        if ".embed_tokens." in name or name.startswith("lm_head."):
            return f"adapter tensor {name!r}: LoRA on the token embedding or the output layer is not supported"
        return f"adapter tensor {name!r} is not an mlx-lm LoRA tensor of a decoder layer"
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
