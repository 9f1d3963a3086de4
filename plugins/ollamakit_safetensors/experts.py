"""Mixtures of experts: ``MixtralForCausalLM`` → ``llama`` with experts, ``Qwen3MoeForCausalLM``
→ ``qwen3moe``, as llama.cpp's converter writes them.

Each expert's FFN matrices are separate tensors in the folder (``experts.N.gate_proj``, or
mixtral's ``w1``/``w2``/``w3``); the plan stacks a layer's into one 3-D tensor per matrix
(``ffn_gate_exps``, ``ffn_up_exps``, ``ffn_down_exps``: experts, rows, row), the layout the
engine multiplies with ``mul_mat_id``. The router (``ffn_gate_inp``) stays float32.
"""

from __future__ import annotations

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import Config, arch_keys
from .decoders import _DECODER_LAYER, Llama, Qwen3

_EXPERT_TENSORS = ["ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"]


class _Experts:
    """What the two share: the experts' shapes, and the blocks' tensors without a dense FFN."""

    n_embd: int
    n_expert: int
    n_ff_exp: int

    def expert_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        d, n, ff = self.n_embd, self.n_expert, self.n_ff_exp
        return {
            "ffn_gate_inp.weight": (n, d),
            "ffn_gate_exps.weight": (n, ff, d),
            "ffn_up_exps.weight": (n, ff, d),
            "ffn_down_exps.weight": (n, d, ff),
        }.get(base)

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        return self.expert_shape(name) or super().expected_shape(name)  # type: ignore[misc]

    def layer_tensors(self) -> list[str]:
        attention = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm"]
        return attention + _EXPERT_TENSORS


def expert_counts(config: Config, experts_key: str) -> tuple[int, int]:
    n_expert = config.int(experts_key, high=1024)
    used = config.int("num_experts_per_tok", high=1024)
    if used > n_expert:
        raise InvalidModelFile(f"config.json: {used} experts per token of {n_expert}")
    return n_expert, used


class Mixtral(_Experts, Llama):
    """llama's attention (q/k permuted), a router and top-k experts; the renormalised top-k
    weights are llama.cpp's default."""

    gguf_name = "llama"
    hf_names = ("MixtralForCausalLM",)
    layer_names = {**_DECODER_LAYER, "block_sparse_moe.gate": "ffn_gate_inp"}
    expert_names = {"w1": "ffn_gate_exps", "w2": "ffn_down_exps", "w3": "ffn_up_exps"}

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        self.n_expert, self.n_expert_used = expert_counts(config, "num_local_experts")
        self.n_ff_exp = self.n_ff

    def metadata(self):
        values = super().metadata()
        values["llama.expert_count"] = (self.n_expert, ValueType.UINT32)
        values["llama.expert_used_count"] = (self.n_expert_used, ValueType.UINT32)
        return values


class Qwen3Moe(_Experts, Qwen3):
    """qwen3's attention (per-head q/k norms), a softmax router and top-k experts whose weights
    are renormalised (``norm_topk_prob``, which llama.cpp always does for qwen3moe)."""

    gguf_name = "qwen3moe"
    hf_names = ("Qwen3MoeForCausalLM",)
    layer_names = {**_DECODER_LAYER, "mlp.gate": "ffn_gate_inp"}
    expert_names = {
        "gate_proj": "ffn_gate_exps",
        "up_proj": "ffn_up_exps",
        "down_proj": "ffn_down_exps",
    }

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        self.n_expert, self.n_expert_used = expert_counts(config, "num_experts")
        self.n_ff_exp = config.int("moe_intermediate_size")
        # every layer with experts and their weights renormalised: what llama.cpp's graph runs
        if config.get("mlp_only_layers") or config.int("decoder_sparse_step", 1) != 1:
            raise InvalidModelFile("config.json: layers without experts are not supported")
        if config.get("norm_topk_prob") is False:
            raise InvalidModelFile("config.json: norm_topk_prob false is not supported")
        if config.int("shared_expert_intermediate_size", 0, low=0):
            raise InvalidModelFile("config.json: a shared expert is not supported")

    def metadata(self):
        values = super().metadata()
        values.update(
            arch_keys(
                self.gguf_name,
                {
                    "expert_count": (self.n_expert, ValueType.UINT32),
                    "expert_used_count": (self.n_expert_used, ValueType.UINT32),
                    "expert_feed_forward_length": (self.n_ff_exp, ValueType.UINT32),
                },
            )
        )
        return values
