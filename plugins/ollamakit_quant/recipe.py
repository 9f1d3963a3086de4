"""Which ggml type each tensor gets for a file type such as Q4_K_M.

A mixture is more than its base type: llama.cpp's recipe (``llama_tensor_get_type`` in
src/llama-quant.cpp) spends extra bits where errors hurt most (the output matrix, attention
values, some feed-forward down projections chosen by layer position), keeps vectors and a few
sensitive matrices unquantized, and falls back to a 32-element type when a row is not a whole
number of 256-value super-blocks. This module reproduces those decisions for the fourteen file
types we offer, so our files match llama.cpp's tensor for tensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollamakit.errors import BadRequest

from ollamakit.lib.gguf.constants import GGML_TYPE_BY_NAME, GGML_TYPES

# File type -> (general.file_type number, base tensor type).
FILE_TYPES: dict[str, tuple[int, str]] = {
    "Q2_K": (10, "Q2_K"),
    "Q3_K_S": (11, "Q3_K"),
    "Q3_K_M": (12, "Q3_K"),
    "Q3_K_L": (13, "Q3_K"),
    "Q4_0": (2, "Q4_0"),
    "Q4_1": (3, "Q4_1"),
    "Q4_K_S": (14, "Q4_K"),
    "Q4_K_M": (15, "Q4_K"),
    "Q5_0": (8, "Q5_0"),
    "Q5_1": (9, "Q5_1"),
    "Q5_K_S": (16, "Q5_K"),
    "Q5_K_M": (17, "Q5_K"),
    "Q6_K": (18, "Q6_K"),
    "Q8_0": (7, "Q8_0"),
}

# When a row does not split into super-blocks: the 32-element type llama.cpp uses instead.
_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}

# Matrices llama.cpp never quantizes (tiny, positional, or routing tables), matched anywhere in
# the name; plus exact names below.
_KEEP_SUBSTRINGS = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
)
_KEEP_NAMES = ("position_embd.weight", "token_types.weight")
# Ollama's own choices over llama.cpp's recipe (server/quantization.go, given to llama-quantize
# as --tensor-type): deepseek2's latent-attention matrices, small and critical, stay Q8_0 in
# its Q4_K mixtures. (architecture, file types, name suffixes, type)
_OLLAMA_OVERRIDES = (
    (
        "deepseek2",
        ("Q4_K_S", "Q4_K_M"),
        ("attn_k_b.weight", "attn_q_a.weight", "attn_q_b.weight", "attn_v_b.weight")
        + ("attn_kv_a_mqa.weight",),
        "Q8_0",
    ),
)
_LAYER = re.compile(r"^blk\.(-?\d+)\.")


@dataclass(frozen=True)
class ModelFacts:
    """The hyperparameters the recipe looks at."""

    arch: str
    n_layer: int
    n_gqa: int
    n_expert: int
    is_70b: bool

    @classmethod
    def from_metadata(cls, metadata: dict) -> ModelFacts:
        arch = metadata.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""

        def number(key: str) -> int:
            value = metadata.get(f"{arch}.{key}")
            if isinstance(value, list):  # per-layer values: llama.cpp asks about layer 0
                value = value[0] if value else 0
            return (
                value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
            )

        heads, kv_heads = number("attention.head_count"), number("attention.head_count_kv")
        kv_heads = kv_heads or heads  # llama.cpp's default when the key is absent
        n_layer = number("block_count")
        return cls(
            arch=arch,
            n_layer=n_layer,
            n_gqa=heads // kv_heads if kv_heads else 0,
            n_expert=number("expert_count"),
            # llama.cpp's 70B size class: 80 llama layers with grouped-query attention.
            is_70b=arch == "llama" and n_layer == 80 and heads != kv_heads,
        )


def n_dims(shape) -> int:
    """ggml_n_dims: trailing dimensions of size 1 do not count."""
    dims = len(shape)
    while dims > 1 and shape[dims - 1] == 1:
        dims -= 1
    return dims


def weight_order(names):
    """llama.cpp's tensor order: by layer number (non-layer tensors first), then by name."""

    def key(name):
        match = _LAYER.match(name)
        return (int(match.group(1)) if match else -1, name.encode())

    return sorted(names, key=key)


def quantizable(name: str, shape) -> bool:
    return (
        n_dims(shape) >= 2
        and name.endswith("weight")
        and name not in _KEEP_NAMES
        and not any(part in name for part in _KEEP_SUBSTRINGS)
    )


def category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for marker, kind in (
        ("attn_qkv.weight", "attn_v"),
        ("attn_kv_b.weight", "attn_v"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if marker in name:
            return kind
    return "other"


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


def block_size(type_name: str) -> int:
    return GGML_TYPES[GGML_TYPE_BY_NAME[type_name]][1]


class Recipe:
    """Chooses tensor types for one file; call :meth:`choose` in :func:`weight_order`."""

    def __init__(self, file_type: str, facts: ModelFacts, names):
        self.file_type = file_type
        self.base = FILE_TYPES[file_type][1]
        self.facts = facts
        names = list(names)
        self.tied = "output.weight" not in names  # token_embd then doubles as the output matrix
        self.n_attention_wv = sum(category(n) == "attn_v" for n in names)
        self.counters = {"attn_v": 0, "ffn_down": 0, "ffn_gate": 0, "ffn_up": 0}

    def choose(self, name: str, shape) -> str | None:
        """The ggml type for this tensor, or None to keep it as it is."""
        if not quantizable(name, shape):
            return None
        chosen = self._override(name, shape) or self._mixture(name, shape, category(name))
        if shape[0] % block_size(chosen):
            fallback = _FALLBACK.get(chosen)
            if fallback is None:
                raise BadRequest(
                    f"cannot quantize tensor '{name}' to {chosen}: its row length {shape[0]} "
                    f"is not a multiple of {block_size(chosen)}"
                )
            chosen = fallback if shape[0] % block_size(fallback) == 0 else "F16"
        return chosen

    def _override(self, name: str, shape) -> str | None:
        """Ollama's type for this tensor, where its row fits (else the mixture's fallbacks
        choose, which is where llama.cpp's leave it too)."""
        for arch, file_types, suffixes, chosen in _OLLAMA_OVERRIDES:
            if (
                self.facts.arch == arch
                and self.file_type in file_types
                and name.endswith(suffixes)
                and shape[0] % block_size(chosen) == 0
            ):
                return chosen
        return None

    def _layer(self, kind: str, name: str) -> tuple[int, int]:
        """(layer index, layer count) for the per-layer rules; counted in tensor order, or read
        from the name in mixture-of-experts models, whose expert tensors are not in layer order."""
        index, total = self.counters[kind], self.facts.n_layer
        if self.facts.n_expert > 1:
            match = _LAYER.match(name)
            if not match or not 0 <= int(match.group(1)) < total:
                raise BadRequest(f"cannot determine the layer of tensor '{name}'")
            index = int(match.group(1))
        return index, total

    def _mixture(self, name: str, shape, kind: str) -> str:
        ft, facts, new = self.file_type, self.facts, self.base
        falcon = facts.arch == "falcon"
        if kind == "output" or (self.tied and kind == "token_embd"):
            if falcon or shape[0] % block_size(new):
                return "Q8_0"
            return new if new == "Q8_0" else "Q6_K"
        if kind == "attn_v":
            i = self.counters["attn_v"]
            if ft == "Q2_K":
                new = "Q4_K" if facts.n_gqa >= 4 else "Q3_K"
            elif ft == "Q3_K_M":
                new = "Q5_K" if i < 2 else "Q4_K"
            elif ft == "Q3_K_L":
                new = "Q5_K"
            elif ft in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, self.n_attention_wv):
                new = "Q6_K"
            elif ft == "Q4_K_S" and i < 4:
                new = "Q5_K"
            if facts.is_70b and new in ("Q3_K", "Q4_K"):
                new = "Q5_K"  # eight heads share attn_v there: more bits cost little
            if facts.n_expert == 8:
                new = "Q8_0"
            self.counters["attn_v"] += 1
        elif kind == "attn_k":
            if facts.n_expert == 8:
                new = "Q8_0"
        elif kind == "ffn_down":
            i, n = self._layer("ffn_down", name)
            if ft == "Q2_K":
                new = "Q3_K"
            elif ft == "Q3_K_M":
                new = (
                    "Q5_K"
                    if i < n // 16
                    else "Q4_K"
                    if not falcon or _use_more_bits(i, n)
                    else "Q3_K"
                )
            elif ft == "Q3_K_L":
                new = "Q4_K" if falcon else "Q5_K"
            elif ft == "Q4_K_M":
                if falcon:
                    new = "Q6_K" if i < n // 16 else "Q5_K" if _use_more_bits(i, n) else "Q4_K"
                elif _use_more_bits(i, n):
                    new = "Q6_K"
            elif ft == "Q5_K_M" and _use_more_bits(i, n):
                new = "Q6_K"
            elif ft == "Q4_K_S" and not falcon and i < n // 8:
                new = "Q5_K"
            self.counters["ffn_down"] += 1
        elif kind == "attn_output":
            if falcon:
                if ft == "Q3_K_L":
                    new = "Q4_K"
            elif facts.n_expert == 8:
                if ft in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M"):
                    new = "Q5_K"
            else:
                new = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ft, new)
        elif kind in ("ffn_gate", "ffn_up"):
            self._layer(kind, name)  # only the IQ3 mixtures change these; the count still moves
            self.counters[kind] += 1
        return new
