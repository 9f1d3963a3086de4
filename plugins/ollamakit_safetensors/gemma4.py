"""``Gemma4ForCausalLM`` → ``gemma4``, as llama.cpp's converter writes it.

Gemma 4's sliding-window layers and its global ones have heads of their own width
(``head_dim``; the global ones' ``global_head_dim``, or ``per_layer_config`` as transformers
saves it) and their own count of key/value heads, written as ``key_length_swa`` beside
``key_length`` and as one ``head_count_kv`` per layer. The global layers rotate a quarter of each
head ("proportional" rope): llama.cpp's graph rotates a head's leading dimensions, so the
converter writes frequency factors, 1 for the rotated pairs and 1e30 (no rotation) for the rest,
as ``rope_freqs.weight``. Norms multiply by their weight (no ``1 + w`` as in Gemma 2 and 3); each
block's ``layer_scalar`` becomes ``layer_output_scale.weight``; a global layer without
``v_proj`` (``attention_k_eq_v``) attends over its keys' projection.

Refused, by name: per-layer embeddings (the E2B and E4B models), layers that reuse another
layer's keys and values, experts (26B-A4B), attention biases, bidirectional attention, and rope
settings other than the released ones.
"""

from __future__ import annotations

import re

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, Config, Tensor, arch_keys
from .decoders import Decoder, Gemma3

_LAYER_SCALAR = re.compile(r"^model\.layers\.(\d+)\.layer_scalar$")
SLIDING, FULL = "sliding_attention", "full_attention"
# the same tensors as Gemma 3's block, by the same names
_LAYER_NAMES = Gemma3.layer_names
# what the text model's config turns on that the engine does not run: (key, default, what)
_REFUSED = (
    ("hidden_size_per_layer_input", 256, "per-layer embeddings"),
    ("num_kv_shared_layers", 0, "layers that reuse another layer's keys and values"),
    ("enable_moe_block", False, "experts"),
    ("attention_bias", False, "attention biases"),
)


class Gemma4(Decoder):
    gguf_name = "gemma4"
    hf_names = ("Gemma4ForCausalLM",)
    layer_names = _LAYER_NAMES

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        for key, default, what in _REFUSED:
            if c.get(key, default):
                raise InvalidModelFile(f"config.json: gemma4 with {what} ({key}) is not supported")
        if c.get("use_bidirectional_attention") == "all":
            raise InvalidModelFile(
                "config.json: gemma4 with bidirectional attention is not supported"
            )
        types = c.get("layer_types")
        if (
            not isinstance(types, list)
            or len(types) != self.n_layer
            or any(t not in (SLIDING, FULL) for t in types)
        ):
            raise InvalidModelFile(
                f"config.json: layer_types must name {SLIDING} or {FULL} for each of "
                f"{self.n_layer} layers"
            )
        self.swa = [t == SLIDING for t in types]
        overrides = self._full_layer_config()
        self.head_dim_full = Config(overrides).int(
            "head_dim", c.int("global_head_dim", self.head_dim)
        )
        self.n_head_kv_full = Config(overrides).int(
            "num_key_value_heads", self.n_head_kv, high=4096
        )
        if self.n_head % self.n_head_kv_full:
            raise InvalidModelFile(
                "config.json: num_attention_heads is not a multiple of the global layers' "
                "key/value heads"
            )
        self.k_eq_v = bool(c.get("attention_k_eq_v", False))
        params = c.section("rope_parameters")
        sliding, full = (params.section(kind) for kind in (SLIDING, FULL))
        for kind, rope, allowed in (
            (SLIDING, sliding, ("default",)),
            (FULL, full, ("default", "proportional")),
        ):
            rope_type = rope.get("rope_type", "default")
            if rope_type not in allowed:
                raise InvalidModelFile(f"config.json: {kind} rope {rope_type!r} is not supported")
        if sliding.float("partial_rotary_factor", 1.0) != 1.0:
            raise InvalidModelFile(
                "config.json: a partial rotary factor on the sliding layers is not supported"
            )
        self.rope_base, self.rope_base_swa = (
            full.float("rope_theta", 1_000_000.0),
            sliding.float("rope_theta", 10_000.0),
        )
        partial = full.float("partial_rotary_factor", 1.0)
        if not 0.0 < partial <= 1.0:
            raise InvalidModelFile("config.json: partial_rotary_factor must be in (0, 1]")
        self.rotated_full = int(self.head_dim_full * partial / 2)  # pairs rotated
        self.tied = "lm_head.weight" not in folder.tensors

    def _full_layer_config(self) -> dict:
        """A global layer's own head width and key/value heads: ``per_layer_config`` as
        transformers saves the config, else ``global_head_dim`` and (with
        ``attention_k_eq_v``, as transformers reads it) ``num_global_key_value_heads``."""
        c = self.config
        per_layer = c.get("per_layer_config")
        if isinstance(per_layer, dict):
            full = [per_layer.get(str(i)) for i, local in enumerate(self.swa) if not local]
            full = [entry for entry in full if isinstance(entry, dict)]
            if any(entry != full[0] for entry in full):
                raise InvalidModelFile(
                    "config.json: per_layer_config differs between global layers"
                )
            if full:
                return full[0]
        values = {}
        if c.get("global_head_dim") is not None:
            values["head_dim"] = c.get("global_head_dim")
        if c.get("attention_k_eq_v") and c.get("num_global_key_value_heads") is not None:
            values["num_key_value_heads"] = c.get("num_global_key_value_heads")
        return values

    def rope_scaling(self) -> dict:
        return {}  # proportional rope is the rope_freqs tensor; other scalings are refused

    def metadata(self):
        c = self.config
        values = self.common_metadata()
        values.update(
            {
                "attention.head_count_kv": (
                    [self.n_head_kv if local else self.n_head_kv_full for local in self.swa],
                    ValueType.UINT32,
                ),
                "rope.freq_base": (self.rope_base, ValueType.FLOAT32),
                "rope.freq_base_swa": (self.rope_base_swa, ValueType.FLOAT32),
                "attention.key_length": (self.head_dim_full, ValueType.UINT32),
                "attention.value_length": (self.head_dim_full, ValueType.UINT32),
                "attention.sliding_window": (
                    c.int("sliding_window", 512, high=MAX_CONTEXT),
                    ValueType.UINT32,
                ),
                "attention.shared_kv_layers": (0, ValueType.UINT32),
                "embedding_length_per_layer_input": (0, ValueType.UINT32),
                "attention.sliding_window_pattern": (self.swa, ValueType.BOOL),
                "attention.key_length_swa": (self.head_dim, ValueType.UINT32),
                "attention.value_length_swa": (self.head_dim, ValueType.UINT32),
                "rope.dimension_count": (self.head_dim_full, ValueType.UINT32),
                "rope.dimension_count_swa": (self.head_dim, ValueType.UINT32),
            }
        )
        if c.get("final_logit_softcapping"):
            values["final_logit_softcapping"] = (
                c.float("final_logit_softcapping"),
                ValueType.FLOAT32,
            )
        return arch_keys(self.gguf_name, values)

    def tensor(self, hf_name: str) -> Tensor | None:
        match = _LAYER_SCALAR.match(hf_name)
        if match and int(match.group(1)) < self.n_layer:
            return Tensor(
                f"blk.{match.group(1)}.layer_output_scale.weight", hf_name, force_f32=True
            )
        return super().tensor(hf_name)

    def _layer_dims(self, index: int) -> tuple[int, int]:
        """(head width, key/value heads) of block ``index``."""
        if self.swa[index]:
            return self.head_dim, self.n_head_kv
        return self.head_dim_full, self.n_head_kv_full

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        if name == "rope_freqs.weight":
            return (self.head_dim_full // 2,)
        if not name.startswith("blk."):
            return super().expected_shape(name)
        index, base = name.split(".", 2)[1:]
        hd, kv_heads = self._layer_dims(int(index))
        q, kv, d = self.n_head * hd, kv_heads * hd, self.n_embd
        shapes = {
            "attn_q.weight": (q, d),
            "attn_k.weight": (kv, d),
            "attn_v.weight": (kv, d),
            "attn_output.weight": (d, q),
            "attn_q_norm.weight": (hd,),
            "attn_k_norm.weight": (hd,),
            "layer_output_scale.weight": (1,),
        }
        return shapes.get(base) or super().expected_shape(name)

    def required(self) -> list[str]:
        names = ["token_embd.weight", "output_norm.weight"]
        common = ["attn_norm", "attn_q", "attn_k", "attn_output", "attn_q_norm", "attn_k_norm"]
        common += ["ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_attention_norm"]
        common += ["post_ffw_norm"]
        for i, local in enumerate(self.swa):
            parts = common + ([] if self.k_eq_v and not local else ["attn_v"])
            names += [f"blk.{i}.{part}.weight" for part in parts]
        return names

    def extra_tensors(self) -> dict[str, np.ndarray]:
        """The global layers' proportional rope, as llama.cpp's converter writes it."""
        rest = self.head_dim_full // 2 - self.rotated_full
        return {
            "rope_freqs.weight": np.array(
                [1.0] * self.rotated_full + [1e30] * rest, dtype=np.float32
            )
        }
