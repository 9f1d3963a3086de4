"""``Phi3ForCausalLM`` (phi3, phi3.5, phi4, phi4-mini) → ``phi3``, as llama.cpp's converter writes it.

q, k and v stay in one matrix (``attn_qkv``) and the gate and up rows in one (``ffn_up``). The
128k models' LongRoPE becomes two tensors of rope frequency factors, ``rope_factors_long`` and
``rope_factors_short``, and the magnitude factor rope applies with them
(``rope.scaling.attn_factor``), computed from the ratio of the context to the original one.
"""

from __future__ import annotations

import math

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, Config, arch_keys
from .decoders import _DECODER_LAYER, Decoder


class Phi3(Decoder):
    gguf_name = "phi3"
    hf_names = ("Phi3ForCausalLM",)
    layer_names = {**_DECODER_LAYER, "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        rotary = self.rope.float(
            "partial_rotary_factor", config.float("partial_rotary_factor", 1.0)
        )
        if not 0 < rotary <= 1:
            raise InvalidModelFile("config.json: partial_rotary_factor must be in (0, 1]")
        self.rope_dim = int(rotary * self.n_embd) // self.n_head
        self.original_context = Config(
            {"original_max_position_embeddings": self.context, **config.values, **self.rope.values}
        ).int("original_max_position_embeddings", high=MAX_CONTEXT)

    def metadata(self):
        values = self.common_metadata()
        values["rope.dimension_count"] = (self.rope_dim, ValueType.UINT32)
        values["rope.scaling.original_context_length"] = (self.original_context, ValueType.UINT32)
        # written as the converter writes it (0: none); llama.cpp runs phi3 with full attention
        window = self.config.get("sliding_window")
        window = self.config.int("sliding_window", low=0, high=MAX_CONTEXT) if window else 0
        values["attention.sliding_window"] = (window, ValueType.UINT32)
        return arch_keys(self.gguf_name, values)

    def rope_scaling(self) -> dict:
        """LongRoPE's (``su``/``longrope``, or ``yarn``'s) magnitude factor; the factor sets
        themselves are tensors (``extra_tensors``)."""
        kind = self.rope.get("rope_type") or self.rope.get("type") or "default"
        if not isinstance(kind, str):
            raise InvalidModelFile(f"config.json: rope scaling {kind!r} is not supported")
        kind = kind.lower()
        if not self.rope.get("long_factor"):
            if kind not in ("default", "su", "longrope", "yarn"):
                raise InvalidModelFile(f"config.json: rope scaling {kind!r} is not supported")
            return {}
        scale = self.context / self.original_context
        if kind in ("su", "longrope"):
            factor = math.sqrt(1 + math.log(scale) / math.log(self.original_context))
        elif kind == "yarn":
            factor = 0.1 * math.log(scale) + 1.0
        else:
            raise InvalidModelFile(f"config.json: rope scaling {kind!r} is not supported")
        return {"rope.scaling.attn_factor": (factor if scale > 1.0 else 1.0, ValueType.FLOAT32)}

    def extra_tensors(self) -> dict[str, np.ndarray]:
        if not self.rope.get("long_factor"):
            return {}
        factors = {}
        for kind in ("long", "short"):
            values = self.rope.get(f"{kind}_factor")
            if (
                not isinstance(values, list)
                or len(values) != self.rope_dim // 2
                or not all(
                    isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values
                )
            ):
                raise InvalidModelFile(
                    f"config.json: {kind}_factor must be {self.rope_dim // 2} positive numbers"
                )
            factors[f"rope_factors_{kind}.weight"] = np.asarray(values, np.float32)
        return factors

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        qkv = (self.n_head + 2 * self.n_head_kv) * self.head_dim
        shapes = {
            "attn_qkv.weight": (qkv, self.n_embd),
            "ffn_up.weight": (2 * self.n_ff, self.n_embd),
        }
        return shapes.get(base) or super().expected_shape(name)

    def layer_tensors(self) -> list[str]:
        return ["attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"]
