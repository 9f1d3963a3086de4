"""``DeepseekV2ForCausalLM`` and ``DeepseekV3ForCausalLM`` → ``deepseek2``, as llama.cpp's
current converter writes them.

Multi-head latent attention: queries through a low-rank pair (``q_a_proj``, its norm,
``q_b_proj``) or one matrix (the lite models' ``q_proj``); keys and values through one shared
latent (``kv_a_proj_with_mqa``, its norm), expanded per head by ``kv_b_proj``. That last matrix
is split as llama.cpp's converter splits it: each head's key rows, transposed, become
``attn_k_b`` (heads, latent, key) and its value rows ``attn_v_b`` (heads, value, latent), the two
halves the engine's compressed cache multiplies with directly. (Ollama's converter writes the
older single ``attn_kv_b``, from which the engine would derive a float16 copy of the key rows at
every load.) The cache keys therefore describe the latent (one key/value head, ``key_length``
latent plus rope, ``value_length`` the latent) and ``*_mla`` the per-head widths.

After ``first_k_dense_replace`` dense layers, each layer has routed experts (stacked into
``ffn_*_exps``) beside shared ones (``ffn_*_shexp``); deepseek-v3's router is a sigmoid with a
selection bias (``e_score_correction_bias`` → ``exp_probs_b``) choosing within the best groups,
deepseek-v2's a softmax. Multi-token-prediction layers past ``num_hidden_layers`` are left out,
as both converters do. Rope (adjacent pairs) is YaRN with deepseek's magnitude,
``mscale_all_dim``, written as the converter writes it (``yarn_log_multiplier``, times 0.1).
"""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import Config, Tensor, arch_keys
from .decoders import Decoder
from .experts import expert_counts

_LAYER_INDEX = re.compile(r"^model\.layers\.(\d+)\.")
_ROUTERS = {"DeepseekV2ForCausalLM": "softmax", "DeepseekV3ForCausalLM": "sigmoid"}
_GATING = {"softmax": 1, "sigmoid": 2}  # llama.cpp's expert_gating_func


class Deepseek2(Decoder):
    gguf_name = "deepseek2"
    hf_names = tuple(_ROUTERS)
    layer_names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.q_a_proj": "attn_q_a",
        "self_attn.q_a_layernorm": "attn_q_a_norm",
        "self_attn.q_b_proj": "attn_q_b",
        "self_attn.kv_a_proj_with_mqa": "attn_kv_a_mqa",
        "self_attn.kv_a_layernorm": "attn_kv_a_norm",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "mlp.gate": "ffn_gate_inp",
        "mlp.shared_experts.gate_proj": "ffn_gate_shexp",
        "mlp.shared_experts.up_proj": "ffn_up_shexp",
        "mlp.shared_experts.down_proj": "ffn_down_shexp",
    }
    expert_names = {
        "gate_proj": "ffn_gate_exps",
        "up_proj": "ffn_up_exps",
        "down_proj": "ffn_down_exps",
    }

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        self.router = _ROUTERS[c.get("architectures")[0]]
        self.n_expert, self.n_expert_used = expert_counts(c, "n_routed_experts")
        self.n_ff_exp = c.int("moe_intermediate_size")
        self.n_shared = c.int("n_shared_experts", 0, low=0, high=1024)
        self.n_dense = c.int("first_k_dense_replace", 0, low=0, high=self.n_layer)
        self.q_rank = c.int("q_lora_rank") if c.get("q_lora_rank") else 0
        self.kv_rank = c.int("kv_lora_rank")
        self.nope, self.pe = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim")
        self.v_dim = c.int("v_head_dim")
        self.groups = 0
        if self.router == "sigmoid":
            self.groups = c.int("n_group", 1)
            self.groups_used = c.int("topk_group", 1, high=self.groups)
            if self.n_expert % self.groups:
                raise InvalidModelFile("config.json: n_routed_experts is not a multiple of n_group")
        self._refuse_what_runs_otherwise()

    def _refuse_what_runs_otherwise(self) -> None:
        """Configs the engine (llama.cpp's graph) would run otherwise than the model's class."""
        c, rope = self.config, self.rope
        scoring = c.get("scoring_func", self.router)
        if scoring != self.router:
            raise InvalidModelFile(f"config.json: scoring_func {scoring!r} is not supported")
        method = c.get("topk_method", "greedy" if self.router == "softmax" else "noaux_tc")
        if method != ("greedy" if self.router == "softmax" else "noaux_tc"):
            # deepseek-v2's group_limited_greedy picks groups by their best expert, llama.cpp
            # by the sum of their best two
            raise InvalidModelFile(f"config.json: topk_method {method!r} is not supported")
        if c.get("rope_interleave") is False:
            raise InvalidModelFile("config.json: rope_interleave false is not supported")
        if c.int("moe_layer_freq", 1) != 1:
            raise InvalidModelFile("config.json: moe_layer_freq other than 1 is not supported")
        if c.int("num_key_value_heads", self.n_head, high=4096) != self.n_head:
            raise InvalidModelFile("config.json: num_key_value_heads must equal the heads")
        if rope.get("mscale") is not None and rope.get("mscale") != rope.get("mscale_all_dim"):
            # llama.cpp's yarn takes one magnitude, mscale_all_dim, for both
            raise InvalidModelFile("config.json: mscale other than mscale_all_dim is not supported")

    def metadata(self):
        c = self.config
        values = self.common_metadata()
        rank, pe = self.kv_rank, self.pe
        values.update(
            {
                "attention.head_count_kv": (1, ValueType.UINT32),  # one latent for all heads
                "vocab_size": (self.vocab, ValueType.UINT32),
                "leading_dense_block_count": (self.n_dense, ValueType.UINT32),
                "attention.q_lora_rank": (self.q_rank or None, ValueType.UINT32),
                "attention.kv_lora_rank": (rank, ValueType.UINT32),
                "attention.key_length": (rank + pe, ValueType.UINT32),
                "attention.value_length": (rank, ValueType.UINT32),
                "attention.key_length_mla": (self.nope + pe, ValueType.UINT32),
                "attention.value_length_mla": (self.v_dim, ValueType.UINT32),
                "expert_feed_forward_length": (self.n_ff_exp, ValueType.UINT32),
                "expert_count": (self.n_expert, ValueType.UINT32),
                "expert_used_count": (self.n_expert_used, ValueType.UINT32),
                "expert_shared_count": (self.n_shared, ValueType.UINT32),
                "expert_gating_func": (_GATING[self.router], ValueType.UINT32),
                "expert_weights_scale": (c.float("routed_scaling_factor", 1.0), ValueType.FLOAT32),
                "rope.dimension_count": (pe, ValueType.UINT32),
            }
        )
        if self.groups:
            values["expert_group_count"] = (self.groups, ValueType.UINT32)
            values["expert_group_used_count"] = (self.groups_used, ValueType.UINT32)
        # deepseek-v2 weighs the chosen experts as the router scored them
        if self.router == "sigmoid" and c.get("norm_topk_prob"):
            values["expert_weights_norm"] = (True, ValueType.BOOL)
        if self.rope.get("mscale_all_dim") is not None:
            multiplier = 0.1 * self.rope.float("mscale_all_dim")
            values["rope.scaling.yarn_log_multiplier"] = (multiplier, ValueType.FLOAT32)
        return arch_keys(self.gguf_name, values)

    def tensors(self, hf_name: str) -> list[Tensor]:
        layer = _LAYER_INDEX.match(hf_name)
        if layer and int(layer.group(1)) >= self.n_layer:
            return []  # multi-token prediction
        if layer and hf_name.endswith(".mlp.gate.e_score_correction_bias"):
            return [Tensor(f"blk.{layer.group(1)}.exp_probs_b.bias", hf_name, force_f32=True)]
        if layer and hf_name.endswith(".self_attn.kv_b_proj.weight"):
            return self._kv_b(int(layer.group(1)), hf_name)
        return super().tensors(hf_name)

    def _kv_b(self, index: int, hf_name: str) -> list[Tensor]:
        """``kv_b_proj``, each head's key rows then value rows, as ``attn_k_b`` (each head's key
        rows transposed) and ``attn_v_b``."""
        heads, nope, v, rank = self.n_head, self.nope, self.v_dim, self.kv_rank

        def keys(w):
            return w.reshape(heads, nope + v, rank)[:, :nope].swapaxes(1, 2)

        def values(w):
            return w.reshape(heads, nope + v, rank)[:, nope:]

        source = (heads * (nope + v), rank)
        return [
            Tensor(
                f"blk.{index}.attn_k_b.weight",
                hf_name,
                keys,
                shape=(heads, rank, nope),
                source_shape=source,
            ),
            Tensor(
                f"blk.{index}.attn_v_b.weight",
                hf_name,
                values,
                shape=(heads, v, rank),
                source_shape=source,
            ),
        ]

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        d, heads, rank, pe = self.n_embd, self.n_head, self.kv_rank, self.pe
        n, e, shared = self.n_expert, self.n_ff_exp, self.n_ff_exp * self.n_shared
        q = heads * (self.nope + pe)
        shapes = {
            "attn_q.weight": (q, d),
            "attn_q_a.weight": (self.q_rank, d),
            "attn_q_a_norm.weight": (self.q_rank,),
            "attn_q_b.weight": (q, self.q_rank),
            "attn_kv_a_mqa.weight": (rank + pe, d),
            "attn_kv_a_norm.weight": (rank,),
            "attn_k_b.weight": (heads, rank, self.nope),
            "attn_v_b.weight": (heads, self.v_dim, rank),
            "attn_output.weight": (d, heads * self.v_dim),
            "ffn_gate_inp.weight": (n, d),
            "exp_probs_b.bias": (n,),
            "ffn_gate_exps.weight": (n, e, d),
            "ffn_up_exps.weight": (n, e, d),
            "ffn_down_exps.weight": (n, d, e),
            "ffn_gate_shexp.weight": (shared, d),
            "ffn_up_shexp.weight": (shared, d),
            "ffn_down_shexp.weight": (d, shared),
        }
        return shapes.get(base) or super().expected_shape(name)

    def required(self) -> list[str]:
        names = ["token_embd.weight", "output_norm.weight"]
        query = ["attn_q_a", "attn_q_a_norm", "attn_q_b"] if self.q_rank else ["attn_q"]
        attention = ["attn_norm", *query, "attn_kv_a_mqa", "attn_kv_a_norm", "attn_k_b"]
        attention += ["attn_v_b", "attn_output", "ffn_norm"]
        experts = ["ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"]
        if self.n_shared:
            experts += ["ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"]
        for i in range(self.n_layer):
            ffn = ["ffn_gate", "ffn_up", "ffn_down"] if i < self.n_dense else experts
            names += [f"blk.{i}.{part}.weight" for part in attention + ffn]
            if i >= self.n_dense and self.router == "sigmoid":
                names.append(f"blk.{i}.exp_probs_b.bias")
        return names
