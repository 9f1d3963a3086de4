"""The tensors a decoder block may have, by name and shape: one table for the engine that loads
them (``graph_weights``) and the check that create runs on a file's header (``requirements``)."""

from __future__ import annotations

from .hparams import HParams


def _qk_norm_width(hp: HParams, heads_width: int) -> int:
    return heads_width if hp.qk_norm_whole else hp.head_dim


# Every tensor a decoder block may have: the field it fills, its name in the file (after
# ``blk.N.``), and its shape in ggml order (the row length first). Which ones a block must have is
# the architecture's (``HParams.required``); the others are used where the file holds them.
LAYER_TENSORS: dict[str, tuple[str, object]] = {
    "attn_norm": ("attn_norm.weight", lambda hp: (hp.n_embd,)),
    "attn_norm_b": ("attn_norm.bias", lambda hp: (hp.n_embd,)),
    "wqkv": ("attn_qkv.weight", lambda hp: (hp.n_embd, hp.q_dim + hp.kv_dim + hp.v_dim)),
    "wq": ("attn_q.weight", lambda hp: (hp.n_embd, hp.q_proj_dim)),
    "wk": ("attn_k.weight", lambda hp: (hp.n_embd, hp.kv_dim)),
    "wv": ("attn_v.weight", lambda hp: (hp.n_embd, hp.v_dim)),
    "bq": ("attn_q.bias", lambda hp: (hp.q_dim,)),
    "bk": ("attn_k.bias", lambda hp: (hp.kv_dim,)),
    "bv": ("attn_v.bias", lambda hp: (hp.v_dim,)),
    "bqkv": ("attn_qkv.bias", lambda hp: (hp.q_dim + hp.kv_dim + hp.v_dim,)),
    "q_norm": ("attn_q_norm.weight", lambda hp: (_qk_norm_width(hp, hp.q_dim),)),
    "k_norm": ("attn_k_norm.weight", lambda hp: (_qk_norm_width(hp, hp.kv_dim),)),
    "wo": ("attn_output.weight", lambda hp: (hp.o_dim, hp.n_embd)),
    "bo": ("attn_output.bias", lambda hp: (hp.n_embd,)),
    "post_attn_norm": ("post_attention_norm.weight", lambda hp: (hp.n_embd,)),
    "ffn_norm": ("ffn_norm.weight", lambda hp: (hp.n_embd,)),
    "ffn_norm_b": ("ffn_norm.bias", lambda hp: (hp.n_embd,)),
    "gate": ("ffn_gate.weight", lambda hp: (hp.n_embd, hp.n_ff)),
    "up": ("ffn_up.weight", lambda hp: (hp.n_embd, 2 * hp.n_ff if hp.fused_gate_up else hp.n_ff)),
    "up_b": ("ffn_up.bias", lambda hp: (hp.n_ff,)),
    "down": ("ffn_down.weight", lambda hp: (hp.n_ff, hp.n_embd)),
    "down_b": ("ffn_down.bias", lambda hp: (hp.n_embd,)),
    "post_ffn_norm": ("post_ffw_norm.weight", lambda hp: (hp.n_embd,)),
    # gemma4: the block's output multiplied by one learned number
    "out_scale": ("layer_output_scale.weight", lambda hp: (1,)),
    # mixture of experts: the router, and each FFN matrix of every expert in one 3-D tensor
    "gate_inp": ("ffn_gate_inp.weight", lambda hp: (hp.n_embd, hp.n_expert)),
    "gate_exps": ("ffn_gate_exps.weight", lambda hp: (hp.n_embd, hp.n_ff_exp, hp.n_expert)),
    "up_exps": ("ffn_up_exps.weight", lambda hp: (hp.n_embd, hp.n_ff_exp, hp.n_expert)),
    "down_exps": ("ffn_down_exps.weight", lambda hp: (hp.n_ff_exp, hp.n_embd, hp.n_expert)),
    # gpt-oss: a learned attention sink per head, biases on the router and on every expert
    "sinks": ("attn_sinks.weight", lambda hp: (hp.n_head,)),
    "gate_inp_b": ("ffn_gate_inp.bias", lambda hp: (hp.n_expert,)),
    "gate_exps_b": ("ffn_gate_exps.bias", lambda hp: (hp.n_ff_exp, hp.n_expert)),
    "up_exps_b": ("ffn_up_exps.bias", lambda hp: (hp.n_ff_exp, hp.n_expert)),
    "down_exps_b": ("ffn_down_exps.bias", lambda hp: (hp.n_embd, hp.n_expert)),
    # deepseek2: a bias on the router's scores that only chooses, and the shared experts' FFN
    "exp_probs_b": ("exp_probs_b.bias", lambda hp: (hp.n_expert,)),
    "gate_shexp": ("ffn_gate_shexp.weight", lambda hp: (hp.n_embd, hp.n_ff_shexp)),
    "up_shexp": ("ffn_up_shexp.weight", lambda hp: (hp.n_embd, hp.n_ff_shexp)),
    "down_shexp": ("ffn_down_shexp.weight", lambda hp: (hp.n_ff_shexp, hp.n_embd)),
    # multi-head latent attention: queries through a low-rank pair (or ``wq``), the latent and
    # the shared rope key in one product, and the latent's maps to each head's keys and values
    # (``k_b``/``v_b``, or both in the older ``kv_b``)
    "q_a": ("attn_q_a.weight", lambda hp: (hp.n_embd, hp.q_lora_rank)),
    "q_a_norm": ("attn_q_a_norm.weight", lambda hp: (hp.q_lora_rank,)),
    "q_b": ("attn_q_b.weight", lambda hp: (hp.q_lora_rank, hp.q_proj_dim)),
    "kv_a_mqa": ("attn_kv_a_mqa.weight", lambda hp: (hp.n_embd, hp.kv_lora_rank + hp.rope_dim)),
    "kv_a_norm": ("attn_kv_a_norm.weight", lambda hp: (hp.kv_lora_rank,)),
    "k_b": ("attn_k_b.weight", lambda hp: (_nope(hp), hp.kv_lora_rank, hp.n_head)),
    "v_b": ("attn_v_b.weight", lambda hp: (hp.kv_lora_rank, hp.head_dim_v_mla, hp.n_head)),
    "kv_b": (
        "attn_kv_b.weight",
        lambda hp: (hp.kv_lora_rank, hp.n_head * (_nope(hp) + hp.head_dim_v_mla)),
    ),
}


def _nope(hp: HParams) -> int:
    """Per-head width of the query/key dimensions without rope (latent attention)."""
    return hp.head_dim_mla - hp.rope_dim


EXPERT_FFN = frozenset(
    {
        "gate_inp",
        "gate_exps",
        "up_exps",
        "down_exps",
        "gate_inp_b",
        "gate_exps_b",
        "up_exps_b",
        "down_exps_b",
        "exp_probs_b",
        "gate_shexp",
        "up_shexp",
        "down_shexp",
    }
)
SHARED_EXPERTS = frozenset({"gate_shexp", "up_shexp", "down_shexp"})
DENSE_FFN = frozenset({"gate", "up", "up_b", "down", "down_b"})
# What each kind of attention reads beyond ``wq``, ``wo`` and the norm before it
LATENT_ATTENTION = frozenset(
    {"q_a", "q_a_norm", "q_b", "kv_a_mqa", "kv_a_norm", "k_b", "v_b", "kv_b"}
)
HEAD_ATTENTION = frozenset(
    {"wqkv", "bqkv", "wk", "wv", "bq", "bk", "bv", "q_norm", "k_norm", "sinks"}
)

# Tensors used only together: a block with the first must have the others.
TOGETHER = {"bq": ("bk", "bv"), "q_norm": ("k_norm",), "k_norm": ("q_norm",)}


def possible_layer_tensors(hp: HParams, index: int = 0) -> dict[str, tuple[str, object]]:
    """The entries of ``LAYER_TENSORS`` block ``index`` of ``hp`` may have, under the
    architecture's names: the experts' in a block with experts, the dense FFN's in the others
    (a file with both is some other kind of model), one kind of attention's."""
    excluded = set(EXPERT_FFN if hp.dense_layer(index) else DENSE_FFN)
    excluded |= HEAD_ATTENTION if hp.kv_lora_rank else LATENT_ATTENTION
    if not hp.n_expert_shared:
        excluded |= SHARED_EXPERTS
    renamed = dict(hp.renamed)
    possible = {}
    for field, (name, shape) in LAYER_TENSORS.items():
        name = renamed.get(field, name)
        # a file name an architecture gives another field is that field's alone
        if field not in excluded and (field in renamed or name not in renamed.values()):
            possible[field] = (name, shape)
    return possible


def required_layer_tensors(hp: HParams, present, index: int = 0) -> frozenset[str]:
    """The fields block ``index`` must have, given the fields ``present`` in the file: the
    architecture's, the queries, keys and values in one matrix or in three (latent attention:
    the latent's maps to keys and values in two or one; gemma4's values may be its keys'), and
    the partners of what it has."""
    required = set(hp.required)
    if hp.dense_layer(index) and hp.n_expert:  # a leading dense layer of a mixture of experts
        required = (required - EXPERT_FFN) | {"gate", "up", "down"}
    if hp.kv_lora_rank:
        required |= {"kv_b"} if "kv_b" in present else {"k_b", "v_b"}
    elif "wqkv" in present:  # the biases an architecture requires, then fused as well
        biased = bool(required & {"bq", "bk", "bv"})
        required = (required - {"bq", "bk", "bv"}) | {"wqkv"} | ({"bqkv"} if biased else set())
    else:
        required |= {"wq", "wk"} if hp.values_from_keys else {"wq", "wk", "wv"}
    for first, others in TOGETHER.items():
        if first in present:
            required |= set(others)
    return frozenset(required)
