"""Decoder-only language models: Hugging Face names and config to llama.cpp's GGUF layout.

* ``LlamaForCausalLM`` (Llama, Mistral, SmolLM2) → ``llama``. Q and K rows are permuted so that
  rope rotates adjacent pairs, as llama.cpp's llama graph expects.
* ``Qwen2ForCausalLM`` → ``qwen2`` (q/k/v biases, rope over halves, no permutation).
* ``Gemma3ForCausalLM`` → ``gemma3``: the RMS norms store ``1 + w`` (Gemma multiplies by it).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, Architecture, Config, Tensor, arch_keys

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_TOP = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
_DECODER_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "post_attention_layernorm": "ffn_norm",
}
# YaRN's settings in config.json, and their GGUF keys after ``rope.scaling.``
YARN_KEYS = (
    ("extrapolation_factor", "yarn_ext_factor"),
    ("attention_factor", "yarn_attn_factor"),
    ("beta_fast", "yarn_beta_fast"),
    ("beta_slow", "yarn_beta_slow"),
)
_UNUSED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
# one expert's matrix in a mixture of experts (qwen3moe's ``mlp.``, mixtral's ``block_sparse_moe.``)
_EXPERT = re.compile(
    r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\.(\d+)\.(\w+)\.weight$"
)


class Decoder(Architecture):
    layer_names = _DECODER_LAYER
    expert_names: dict[str, str] = {}  # an expert's matrix (after ``experts.N.``) → GGUF name
    biases = False  # q/k/v biases (qwen2)
    head_norms = False  # per-head q/k RMS norms (gemma3)

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        self.n_head_kv = c.int("num_key_value_heads", self.n_head, high=4096)
        if self.n_head % self.n_head_kv:
            raise InvalidModelFile(
                "config.json: num_attention_heads is not a multiple of num_key_value_heads"
            )
        self.head_dim = c.int("head_dim", self.n_embd // self.n_head)
        self.rope = Config(rope_parameters(c))
        self.context = c.int("max_position_embeddings", high=MAX_CONTEXT)
        self.tied = "lm_head.weight" not in folder.tensors
        self.vocab = (
            folder.info("model.embed_tokens.weight").shape[0]
            if "model.embed_tokens.weight" in folder.tensors
            else 0
        )

    def common_metadata(self) -> dict:
        c = self.config
        values = {
            "context_length": (self.context, ValueType.UINT32),
            "embedding_length": (self.n_embd, ValueType.UINT32),
            "block_count": (self.n_layer, ValueType.UINT32),
            "feed_forward_length": (self.n_ff, ValueType.UINT32),
            "attention.head_count": (self.n_head, ValueType.UINT32),
            "attention.head_count_kv": (self.n_head_kv, ValueType.UINT32),
            "rope.freq_base": (self.rope.float("rope_theta", 10000.0), ValueType.FLOAT32),
            "attention.layer_norm_rms_epsilon": (c.float("rms_norm_eps", 1e-6), ValueType.FLOAT32),
        }
        if self.head_dim != self.n_embd // self.n_head:
            values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
            values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        values.update(self.rope_scaling())
        return values

    def rope_scaling(self) -> dict:
        kind = self.rope.get("rope_type") or self.rope.get("type")
        if kind in (None, "default"):
            return {}
        factor = self.rope.float("factor", 1.0)
        if kind == "linear":
            return {
                "rope.scaling.type": ("linear", ValueType.STRING),
                "rope.scaling.factor": (factor, ValueType.FLOAT32),
            }
        if kind == "llama3" and self.gguf_name == "llama":
            return {}  # carried by the rope_freqs.weight tensor instead
        if kind == "yarn":
            values = {
                "rope.scaling.type": ("yarn", ValueType.STRING),
                "rope.scaling.factor": (factor, ValueType.FLOAT32),
                "rope.scaling.original_context_length": (
                    self.rope.int("original_max_position_embeddings", high=MAX_CONTEXT),
                    ValueType.UINT32,
                ),
            }
            for key, name in YARN_KEYS:
                if self.rope.get(key) is not None:
                    values[f"rope.scaling.{name}"] = (self.rope.float(key), ValueType.FLOAT32)
            return values
        raise InvalidModelFile(f"config.json: rope scaling {kind!r} is not supported")

    def tensor(self, hf_name: str) -> Tensor | None:
        if _UNUSED.search(hf_name):
            return None
        for prefix, name in _TOP.items():
            if hf_name.startswith(prefix + ".") and hf_name.rsplit(".", 1)[-1] in (
                "weight",
                "bias",
            ):
                return self.make(f"{name}.{hf_name.rsplit('.', 1)[-1]}", hf_name)
        expert = _EXPERT.match(hf_name)
        if expert and expert.group(3) in self.expert_names:
            index, which = int(expert.group(1)), int(expert.group(2))
            if index < self.n_layer and which < self.n_expert:
                name = f"blk.{index}.{self.expert_names[expert.group(3)]}.weight"
                return Tensor(name, hf_name, expert=which)
        match = _LAYER.match(hf_name)
        if match and match.group(2) in self.layer_names:
            index, part, kind = match.groups()
            if int(index) < self.n_layer:
                return self.make(f"blk.{index}.{self.layer_names[part]}.{kind}", hf_name)
        raise InvalidModelFile(f"tensor {hf_name!r} has no place in a {self.gguf_name} model")

    def make(self, name: str, source: str) -> Tensor:
        # norms, biases and the experts' router are float32, as llama.cpp's converter keeps them
        f32 = not name.endswith(".weight") or "norm" in name or ".ffn_gate_inp." in name
        return Tensor(name, source, force_f32=f32)

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        d, hd, ff = self.n_embd, self.head_dim, self.n_ff
        q, kv = self.n_head * hd, self.n_head_kv * hd
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        shapes = {
            "token_embd.weight": (self.vocab, d),
            "output.weight": (self.vocab, d),
            "output_norm.weight": (d,),
            "attn_norm.weight": (d,),
            "attn_q.weight": (q, d),
            "attn_k.weight": (kv, d),
            "attn_v.weight": (kv, d),
            "attn_q.bias": (q,),
            "attn_k.bias": (kv,),
            "attn_v.bias": (kv,),
            "attn_output.weight": (d, q),
            "attn_q_norm.weight": (hd,),
            "attn_k_norm.weight": (hd,),
            "ffn_gate.weight": (ff, d),
            "ffn_up.weight": (ff, d),
            "ffn_down.weight": (d, ff),
            "ffn_norm.weight": (d,),
            "post_attention_norm.weight": (d,),
            "post_ffw_norm.weight": (d,),
        }
        return shapes.get(base)

    def required(self) -> list[str]:
        names = ["token_embd.weight", "output_norm.weight"]
        per_layer = self.layer_tensors() + self.extra_layer_tensors()
        for i in range(self.n_layer):
            names += [f"blk.{i}.{part}.weight" for part in per_layer]
            if self.biases:
                names += [f"blk.{i}.attn_{x}.bias" for x in "qkv"]
        return names

    def layer_tensors(self) -> list[str]:
        """The tensors (after ``blk.N.``, before ``.weight``) every block must have."""
        attention = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output"]
        return attention + ["ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]

    def extra_layer_tensors(self) -> list[str]:
        return []


def rope_parameters(config: Config) -> dict:
    """config.json's rope settings, wherever its writer put them: ``rope_theta`` and
    ``rope_scaling`` at the top (transformers 4), or ``rope_parameters`` (transformers 5; per
    kind of attention in some models, of which the full attention's are the model's)."""
    scaling = config.get("rope_scaling")
    if scaling is not None and not isinstance(scaling, dict):
        raise InvalidModelFile("config.json: rope_scaling must be an object")
    params = config.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidModelFile("config.json: rope_parameters must be an object")
    if params and isinstance(params.get("full_attention"), dict):
        params = params["full_attention"]
    merged = dict(scaling or {})
    if config.get("rope_theta") is not None:
        merged["rope_theta"] = config.get("rope_theta")
    merged.update(params or {})
    return merged


def permute_for_llama(n_head: int):
    """llama.cpp's Q/K permutation: each head's two rope halves become interleaved pairs."""

    def permute(w: np.ndarray) -> np.ndarray:
        rest = w.shape[1:]
        return (
            w.reshape(n_head, 2, w.shape[0] // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)
        )

    return permute


def llama3_rope_factors(config: Config, head_dim: int) -> np.ndarray | None:
    """Per-frequency divisors for Llama 3.1-style rope scaling (``rope_freqs.weight``)."""
    scaling = rope_parameters(config)
    if (scaling.get("rope_type") or scaling.get("type")) != "llama3":
        return None
    s = Config(scaling)
    factor, low, high = (
        s.float("factor", 8.0),
        s.float("low_freq_factor", 1.0),
        s.float("high_freq_factor", 4.0),
    )
    old_context = s.float("original_max_position_embeddings", 8192)
    if high <= low or factor <= 0:
        raise InvalidModelFile(
            "config.json: llama3 rope scaling needs high_freq_factor > low_freq_factor"
        )
    base = s.float("rope_theta", 10000.0)
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / freqs
    smooth = (old_context / wavelen - low) / (high - low)
    factors = np.where(
        wavelen < old_context / high,
        1.0,
        np.where(wavelen > old_context / low, factor, 1.0 / ((1 - smooth) / factor + smooth)),
    )
    return factors.astype(np.float32)


class Llama(Decoder):
    gguf_name = "llama"
    hf_names = ("LlamaForCausalLM", "MistralForCausalLM")

    def metadata(self):
        values = self.common_metadata()
        values["vocab_size"] = (self.vocab, ValueType.UINT32)
        values["rope.dimension_count"] = (self.head_dim, ValueType.UINT32)
        return arch_keys(self.gguf_name, values)

    def make(self, name: str, source: str) -> Tensor:
        tensor = super().make(name, source)
        if ".attn_q." in name:
            tensor.transform = permute_for_llama(self.n_head)
        elif ".attn_k." in name:
            tensor.transform = permute_for_llama(self.n_head_kv)
        return tensor

    def extra_tensors(self) -> dict[str, np.ndarray]:
        factors = llama3_rope_factors(self.config, self.head_dim)
        return {} if factors is None else {"rope_freqs.weight": factors}


class Qwen2(Decoder):
    gguf_name = "qwen2"
    hf_names = ("Qwen2ForCausalLM",)
    biases = True

    def metadata(self):
        return arch_keys("qwen2", self.common_metadata())


class Gemma3(Decoder):
    gguf_name = "gemma3"
    hf_names = ("Gemma3ForCausalLM",)
    layer_names = {
        **_DECODER_LAYER,
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
    }

    def metadata(self):
        values = self.common_metadata()
        values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.sliding_window"] = (
            self.config.int("sliding_window", high=MAX_CONTEXT),
            ValueType.UINT32,
        )
        softcap = self.config.get("final_logit_softcapping")
        if softcap:
            values["final_logit_softcapping"] = (
                self.config.float("final_logit_softcapping"),
                ValueType.FLOAT32,
            )
        return arch_keys("gemma3", values)

    def make(self, name: str, source: str) -> Tensor:
        tensor = super().make(name, source)
        if name.endswith("norm.weight"):  # Gemma scales by (1 + w); GGUF stores the sum
            tensor.transform = lambda w: w.astype(np.float32) + np.float32(1.0)
        return tensor

    def extra_layer_tensors(self) -> list[str]:
        return ["post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"]


class Qwen3(Decoder):
    """``Qwen3ForCausalLM`` → ``qwen3``: qwen2's block with per-head q/k norms, no biases."""

    gguf_name = "qwen3"
    hf_names = ("Qwen3ForCausalLM",)

    def metadata(self):
        values = self.common_metadata()
        values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        return arch_keys(self.gguf_name, values)

    def extra_layer_tensors(self) -> list[str]:
        return ["attn_q_norm", "attn_k_norm"]


class Gemma2(Gemma3):
    """``Gemma2ForCausalLM`` → ``gemma2``: gemma3's norms (stored as ``1 + w``) without q/k
    norms; soft caps on the attention scores and the logits; every other layer windowed."""

    gguf_name = "gemma2"
    hf_names = ("Gemma2ForCausalLM",)

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        # llama.cpp scales queries by the head width, or for the 27B model (46 layers) by the
        # width per head; a config that asks for another scale would run differently
        width = self.n_embd // self.n_head if self.n_layer == 46 else self.head_dim
        if config.int("query_pre_attn_scalar", width) != width:
            raise InvalidModelFile(
                f"config.json: query_pre_attn_scalar other than {width} is not supported"
            )

    def metadata(self):
        c = self.config
        values = self.common_metadata()
        values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.sliding_window"] = (
            c.int("sliding_window", 4096, high=MAX_CONTEXT),
            ValueType.UINT32,
        )
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if c.get(key):
                values[key] = (c.float(key), ValueType.FLOAT32)
        return arch_keys(self.gguf_name, values)

    def extra_layer_tensors(self) -> list[str]:
        return ["post_attention_norm", "post_ffw_norm"]


class Olmo2(Decoder):
    """``Olmo2ForCausalLM`` and ``Olmo3ForCausalLM`` → ``olmo2``: norms after attention and the
    FFN only, q/k norms over all heads; olmo3's windowed layers as ``layer_types`` lists them."""

    gguf_name = "olmo2"
    hf_names = ("Olmo2ForCausalLM", "Olmo3ForCausalLM")
    layer_names = {
        **{k: v for k, v in _DECODER_LAYER.items() if k != "input_layernorm"},
        "post_attention_layernorm": "post_attention_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
    }

    def metadata(self):
        c = self.config
        values = self.common_metadata()
        window = c.get("sliding_window")
        if window:
            values["attention.sliding_window"] = (
                c.int("sliding_window", high=MAX_CONTEXT),
                ValueType.UINT32,
            )
            types = c.get("layer_types")
            if types is not None and (not isinstance(types, list) or len(types) != self.n_layer):
                raise InvalidModelFile("config.json: layer_types must name each layer's attention")
            pattern = (
                [t == "sliding_attention" for t in types]
                if types
                else [(i + 1) % 4 != 0 for i in range(self.n_layer)]  # olmo3's default
            )
            values["attention.sliding_window_pattern"] = (pattern, ValueType.BOOL)
            local = (self.config.get("rope_parameters") or {}).get("sliding_attention")
            if isinstance(local, dict) and local.get("rope_theta") is not None:
                theta = Config(local).float("rope_theta")
                values["rope.freq_base_swa"] = (theta, ValueType.FLOAT32)
        return arch_keys(self.gguf_name, values)

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        q, kv = self.n_head * self.head_dim, self.n_head_kv * self.head_dim
        norms = {"attn_q_norm.weight": (q,), "attn_k_norm.weight": (kv,)}
        return norms.get(base) or super().expected_shape(name)

    def layer_tensors(self) -> list[str]:
        attention = ["attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm"]
        return attention + [
            "post_attention_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "post_ffw_norm",
        ]


class Granite(Llama):
    """``GraniteForCausalLM`` → ``granite``: llama (q/k permuted) with multipliers on the
    embeddings, each block's output, the attention scores and the logits."""

    gguf_name = "granite"
    hf_names = ("GraniteForCausalLM",)
    MULTIPLIERS = (
        ("attention_multiplier", "attention.scale"),
        ("embedding_multiplier", "embedding_scale"),
        ("residual_multiplier", "residual_scale"),
        ("logits_scaling", "logit_scale"),
    )

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        self.head_dim = self.n_embd // self.n_head  # granite's converter ignores head_dim

    def metadata(self):
        values = super().metadata()
        for key, name in self.MULTIPLIERS:
            if self.config.get(key):
                values[f"granite.{name}"] = (self.config.float(key), ValueType.FLOAT32)
        return values


class Starcoder2(Decoder):
    """``Starcoder2ForCausalLM`` → ``starcoder2``: LayerNorm with biases, biased projections,
    a plain GELU FFN (``c_fc`` up, ``c_proj`` down)."""

    gguf_name = "starcoder2"
    hf_names = ("Starcoder2ForCausalLM",)
    layer_names = {
        **{k: v for k, v in _DECODER_LAYER.items() if not k.startswith("mlp.")},
        "mlp.c_fc": "ffn_up",
        "mlp.c_proj": "ffn_down",
    }
    biases = True

    def metadata(self):
        values = self.common_metadata()
        eps = self.config.float("norm_epsilon", 1e-5)
        values["attention.layer_norm_epsilon"] = (eps, ValueType.FLOAT32)
        return arch_keys(self.gguf_name, values)

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        d, ff = self.n_embd, self.n_ff
        biases = {"attn_output.bias": (d,), "ffn_up.bias": (ff,), "ffn_down.bias": (d,)}
        norms = {f"{n}.bias": (d,) for n in ("attn_norm", "ffn_norm", "output_norm")}
        return {**biases, **norms}.get(base) or super().expected_shape(name)

    def layer_tensors(self) -> list[str]:
        return [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_up",
            "ffn_down",
        ]

    def required(self) -> list[str]:
        names = super().required() + ["output_norm.bias"]
        for i in range(self.n_layer):
            parts = ("attn_norm", "ffn_norm", "attn_output", "ffn_up", "ffn_down")
            names += [f"blk.{i}.{part}.bias" for part in parts]
        return names
