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
    "wq": ("attn_q.weight", lambda hp: (hp.n_embd, hp.q_dim)),
    "wk": ("attn_k.weight", lambda hp: (hp.n_embd, hp.kv_dim)),
    "wv": ("attn_v.weight", lambda hp: (hp.n_embd, hp.v_dim)),
    "bq": ("attn_q.bias", lambda hp: (hp.q_dim,)),
    "bk": ("attn_k.bias", lambda hp: (hp.kv_dim,)),
    "bv": ("attn_v.bias", lambda hp: (hp.v_dim,)),
    "q_norm": ("attn_q_norm.weight", lambda hp: (_qk_norm_width(hp, hp.q_dim),)),
    "k_norm": ("attn_k_norm.weight", lambda hp: (_qk_norm_width(hp, hp.kv_dim),)),
    "wo": ("attn_output.weight", lambda hp: (hp.n_head * hp.head_dim_v, hp.n_embd)),
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
}
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
    }
)
DENSE_FFN = frozenset({"gate", "up", "up_b", "down", "down_b"})

# Tensors used only together: a block with the first must have the others.
TOGETHER = {"bq": ("bk", "bv"), "q_norm": ("k_norm",), "k_norm": ("q_norm",)}


def possible_layer_tensors(hp: HParams) -> dict[str, tuple[str, object]]:
    """The entries of ``LAYER_TENSORS`` a block of ``hp`` may have, under the architecture's
    names: the experts' with an expert count, the dense FFN's without (a file with both is some
    other kind of model)."""
    excluded = DENSE_FFN if hp.n_expert else EXPERT_FFN
    renamed = dict(hp.renamed)
    possible = {}
    for field, (name, shape) in LAYER_TENSORS.items():
        name = renamed.get(field, name)
        # a file name an architecture gives another field is that field's alone
        if field not in excluded and (field in renamed or name not in renamed.values()):
            possible[field] = (name, shape)
    return possible


def required_layer_tensors(hp: HParams, present) -> frozenset[str]:
    """The fields a block must have, given the fields ``present`` in the file: the
    architecture's, the queries, keys and values in one matrix or in three, and the partners of
    what it has."""
    required = set(hp.required) | ({"wqkv"} if "wqkv" in present else {"wq", "wk", "wv"})
    for first, others in TOGETHER.items():
        if first in present:
            required |= set(others)
    return frozenset(required)
