"""Tiny random models of each architecture the engine runs, as llama.cpp's converter writes them.

Each ``Fixture`` is a small configuration of one architecture (width 64-128, 2-4 layers, a few
experts), given as the Hugging Face config its ``transformers`` class takes. ``build`` writes it
as a GGUF file with the converter's own keys and tensor names (``convert_hf_to_gguf.py`` in
llama.cpp), from seeded numpy weights: the same bytes on every machine, so tests rebuild a fixture
instead of keeping it in git, and llama.cpp's answers recorded on one machine
(``tests/reference/llamacpp-architectures.json``, by ``python -m ollamakit.testing.architectures
record``) apply to the file built on another.

``python -m ollamakit.testing.architectures convert-check LLAMA_CPP_DIR`` checks the claim: it makes
each model with ``transformers`` from the config class, converts it with llama.cpp's converter and
compares that file's keys, tensor names and shapes with ``build``'s.

Random weights give near-uniform logits, where every greedy step is a tie: each fixture's
``output_scale`` widens the logits until llama.cpp's top two differ by ``TIE_MARGIN`` on most steps.
Matrices are float16 (norms float32, as the converter writes them) and expert tensors Q8_0 (MXFP4
for gpt-oss, as it ships), so the experts are multiplied on their quantized blocks (float16 for
deepseek2: ``Fixture.expert_type``). A ``legacy`` fixture is written as older converters wrote
its architecture; ``build(..., as_converted=True)`` writes it as the current one does, which is
what ``convert-check`` compares.
"""

from __future__ import annotations

import json
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ollamakit.testing.agreement import TIE_MARGIN
from ollamakit.testing.gguf_factory import byte_level_vocab, make_gguf

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
N_VOCAB = len(SPECIALS) + 256
RECORDED = "llamacpp-architectures.json"
PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,")
TOKENS = 24
TOP = 5  # top logprobs recorded per step
NUM_CTX = 256
OLMO3_LOCAL_ROPE_BASE = 500000.0


def cases(name: str) -> list[tuple[str, int]]:
    """The (prompt, num_ctx) of each recorded run of fixture ``name``, in the record's order."""
    return [(text, num_ctx) for num_ctx in FIXTURES[name].contexts for text in PROMPTS]


def prompt_ids(text: str) -> list[int]:
    """A text as the fixtures' byte-level ids (no merges: one id per byte)."""
    return [len(SPECIALS) + b for b in text.encode()]


OLMO3 = dict(
    num_hidden_layers=4,
    sliding_window=8,
    layer_types=["sliding_attention"] * 3 + ["full_attention"],
    rope_scaling={
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
    },
)

BASE = dict(
    vocab_size=N_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=NUM_CTX,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


@dataclass(frozen=True)
class Fixture:
    """One architecture's tiny model: ``config`` as its ``transformers`` config takes it."""

    arch: str  # general.architecture
    hf_config: str  # transformers config class
    hf_model: str  # transformers model class
    config: dict
    output_scale: float = 4.0  # the output matrix's scale, which sets the logits' spread
    seed: int = 0
    # written as llama.cpp's older converters wrote deepseek2 (one attn_kv_b per block, the
    # per-head widths in key_length/value_length): the form of Ollama's library files
    legacy: bool = False
    # deepseek2's experts are float16: with Q8_0 experts (their activations rounded to 8 bits),
    # the logits of these fixtures move by up to 0.1 between two runs of one engine that only
    # batch the rows differently, so a comparison would measure the rounding, not the model
    expert_type: str = "Q8_0"
    # the num_ctx of each recorded run (LongRoPE's: one within the original context, one past it)
    contexts: tuple[int, ...] = (NUM_CTX,)
    # keys Ollama's converter writes that llama.cpp's does not (convert-check leaves them out)
    ollama_keys: tuple[tuple[str, object], ...] = ()

    @property
    def c(self) -> dict:
        """The whole config: ``BASE`` with this architecture's values over it."""
        return {**BASE, **self.config}


FIXTURES = {
    "qwen3": Fixture("qwen3", "Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
    "qwen3moe": Fixture(
        "qwen3moe",
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        dict(
            head_dim=16,
            num_experts=8,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[],
        ),
    ),
    "mixtral": Fixture(
        "llama",
        "MixtralConfig",
        "MixtralForCausalLM",
        dict(num_local_experts=4, num_experts_per_tok=2, intermediate_size=64),
    ),
    "gemma2": Fixture(
        "gemma2",
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=8,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
            hidden_activation="gelu_pytorch_tanh",
            tie_word_embeddings=True,
        ),
    ),
    # gemma4's dense shape (31B's): sliding-window layers with heads of 16 and 2 key/value heads,
    # global ones with heads of 32 and 1 key/value head whose values are the keys' projection
    # (attention_k_eq_v), a quarter of each rotated (proportional rope); a final soft cap
    "gemma4": Fixture(
        "gemma4",
        "Gemma4TextConfig",
        "Gemma4ForCausalLM",
        dict(
            num_hidden_layers=4,
            head_dim=16,
            global_head_dim=32,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"] * 2,
            final_logit_softcapping=30.0,
            hidden_activation="gelu_pytorch_tanh",
            hidden_size_per_layer_input=0,
            num_kv_shared_layers=0,
            tie_word_embeddings=True,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {
                    "rope_type": "proportional",
                    "partial_rotary_factor": 0.25,
                    "rope_theta": 1000000.0,
                },
            },
        ),
        output_scale=0.6,  # tied: the embeddings too (4 repeats one token from the first step)
    ),
    "phi3": Fixture(
        "phi3",
        "Phi3Config",
        "Phi3ForCausalLM",
        dict(
            partial_rotary_factor=1.0, sliding_window=None, original_max_position_embeddings=NUM_CTX
        ),
    ),
    # phi3.5 / phi4-mini: LongRoPE, its short factors within the original context (256), its
    # long ones past it (num_ctx 512), rope's magnitude factor with both
    "phi3-longrope": Fixture(
        "phi3",
        "Phi3Config",
        "Phi3ForCausalLM",
        dict(
            partial_rotary_factor=0.75,  # phi4-mini rotates three quarters of each head
            sliding_window=None,
            max_position_embeddings=4 * NUM_CTX,
            original_max_position_embeddings=NUM_CTX,
            rope_scaling={
                "rope_type": "longrope",
                "short_factor": [1.0, 1.05, 1.1, 1.2, 1.3, 1.5],
                "long_factor": [1.0, 1.5, 2.5, 4.0, 8.0, 16.0],
            },
        ),
        contexts=(NUM_CTX, 2 * NUM_CTX),
    ),
    "granite": Fixture(
        "granite",
        "GraniteConfig",
        "GraniteForCausalLM",
        dict(
            embedding_multiplier=2.0,
            residual_multiplier=0.5,
            attention_multiplier=0.2,
            logits_scaling=0.5,
        ),
    ),
    "olmo2": Fixture("olmo2", "Olmo2Config", "Olmo2ForCausalLM", dict()),
    # olmo3: olmo2 with windowed layers roped plainly, YaRN on the global ones
    "olmo3": Fixture("olmo2", "Olmo3Config", "Olmo3ForCausalLM", OLMO3),
    # as Ollama's converter writes it: YaRN's attention factor as rope.scaling.attn_factor, which
    # llama.cpp applies on the global layers only
    "olmo3-ollama": Fixture(
        "olmo2",
        "Olmo3Config",
        "Olmo3ForCausalLM",
        OLMO3,
        ollama_keys=(("rope.scaling.attn_factor", 1.2),),
    ),
    "gpt-oss": Fixture(
        "gpt-oss",
        "GptOssConfig",
        "GptOssForCausalLM",
        dict(
            head_dim=16,
            num_local_experts=4,
            num_experts_per_tok=2,
            intermediate_size=64,
            sliding_window=8,
            attention_bias=True,
            layer_types=["sliding_attention", "full_attention"],
            rope_scaling={
                "rope_type": "yarn",
                "factor": 4.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "truncate": False,
                "original_max_position_embeddings": 64,
            },
        ),
    ),
    # deepseek-v3's shape: queries through a low-rank pair, a leading dense layer, a sigmoid
    # router with a selection bias choosing within the best 2 of 4 groups, a shared expert,
    # YaRN with deepseek's mscale
    "deepseek2": Fixture(
        "deepseek2",
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        dict(
            num_hidden_layers=3,
            num_key_value_heads=4,
            q_lora_rank=32,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=24,
            first_k_dense_replace=1,
            n_routed_experts=16,
            num_experts_per_tok=4,
            n_group=4,
            topk_group=2,
            n_shared_experts=1,
            moe_intermediate_size=32,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            scoring_func="sigmoid",
            rope_scaling={
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 64,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
            },
        ),
        expert_type="F16",
    ),
    # deepseek-v2-lite's shape, as Ollama's library holds it (``legacy``): queries through one
    # matrix, a softmax router without renormalisation, two shared experts, YaRN with
    # mscale_all_dim 0.707
    "deepseek2-lite": Fixture(
        "deepseek2",
        "DeepseekV2Config",
        "DeepseekV2ForCausalLM",
        dict(
            num_key_value_heads=4,
            q_lora_rank=None,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=24,
            first_k_dense_replace=1,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_shared_experts=2,
            moe_intermediate_size=32,
            routed_scaling_factor=1.0,
            norm_topk_prob=False,
            rope_scaling={
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 64,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
            },
        ),
        legacy=True,
        expert_type="F16",
    ),
    "starcoder2": Fixture(
        "starcoder2",
        "Starcoder2Config",
        "Starcoder2ForCausalLM",
        dict(norm_epsilon=1e-5, use_bias=True, hidden_act="gelu_pytorch_tanh", sliding_window=None),
    ),
}


# -- the GGUF file -----------------------------------------------------------------------------


def _deepseek2_keys(f: Fixture, legacy: bool) -> dict:
    """deepseek2's keys as the converter writes them; ``legacy``: as older converters did (the
    per-head widths in key_length/value_length, one head's worth of key/value heads per head,
    no gating or norm keys), with q_lora_rank 0 written for the lite model, which llama.cpp
    reads unless the model has the real lite's 26 or 27 layers."""
    c, a = f.c, f.arch
    rope = c["rope_scaling"]
    rank, nope, pe = c["kv_lora_rank"], c["qk_nope_head_dim"], c["qk_rope_head_dim"]
    keys = {
        f"{a}.block_count": c["num_hidden_layers"],
        f"{a}.context_length": c["max_position_embeddings"],
        f"{a}.embedding_length": c["hidden_size"],
        f"{a}.feed_forward_length": c["intermediate_size"],
        f"{a}.attention.head_count": c["num_attention_heads"],
        f"{a}.attention.head_count_kv": c["num_key_value_heads"] if legacy else 1,
        f"{a}.rope.scaling.type": "yarn",
        f"{a}.rope.scaling.factor": rope["factor"],
        f"{a}.rope.scaling.original_context_length": rope["original_max_position_embeddings"],
        f"{a}.rope.scaling.yarn_beta_fast": rope["beta_fast"],
        f"{a}.rope.scaling.yarn_beta_slow": rope["beta_slow"],
        f"{a}.rope.freq_base": c["rope_theta"],
        f"{a}.attention.layer_norm_rms_epsilon": c["rms_norm_eps"],
        f"{a}.expert_count": c["n_routed_experts"],
        f"{a}.expert_used_count": c["num_experts_per_tok"],
        f"{a}.leading_dense_block_count": c["first_k_dense_replace"],
        f"{a}.vocab_size": N_VOCAB,
        f"{a}.attention.kv_lora_rank": rank,
        f"{a}.attention.key_length": nope + pe if legacy else rank + pe,
        f"{a}.attention.value_length": c["v_head_dim"] if legacy else rank,
        f"{a}.expert_feed_forward_length": c["moe_intermediate_size"],
        f"{a}.expert_shared_count": c["n_shared_experts"],
        f"{a}.expert_weights_scale": c["routed_scaling_factor"],
        f"{a}.rope.dimension_count": pe,
        f"{a}.rope.scaling.yarn_log_multiplier": 0.1 * rope["mscale_all_dim"],
    }
    if c.get("q_lora_rank") or legacy:
        keys[f"{a}.attention.q_lora_rank"] = c.get("q_lora_rank") or 0
    if not legacy:
        keys[f"{a}.attention.key_length_mla"] = nope + pe
        keys[f"{a}.attention.value_length_mla"] = c["v_head_dim"]
        if c.get("n_group"):
            keys[f"{a}.expert_group_count"] = c["n_group"]
            keys[f"{a}.expert_group_used_count"] = c["topk_group"]
        if c.get("scoring_func"):
            keys[f"{a}.expert_gating_func"] = {"softmax": 1, "sigmoid": 2}[c["scoring_func"]]
        if c.get("norm_topk_prob"):
            keys[f"{a}.expert_weights_norm"] = True
    return keys


def _deepseek2_layer(f: Fixture, index: int, legacy: bool) -> dict[str, tuple[int, ...]]:
    c = f.c
    d, ff, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    rank, nope, pe, v = (
        c["kv_lora_rank"],
        c["qk_nope_head_dim"],
        c["qk_rope_head_dim"],
        c["v_head_dim"],
    )
    q_rank = c.get("q_lora_rank")
    layer: dict[str, tuple[int, ...]] = {"attn_norm.weight": (d,)}
    if q_rank:
        layer.update(
            {
                "attn_q_a.weight": (q_rank, d),
                "attn_q_a_norm.weight": (q_rank,),
                "attn_q_b.weight": (heads * (nope + pe), q_rank),
            }
        )
    else:
        layer["attn_q.weight"] = (heads * (nope + pe), d)
    layer.update({"attn_kv_a_mqa.weight": (rank + pe, d), "attn_kv_a_norm.weight": (rank,)})
    if legacy:
        layer["attn_kv_b.weight"] = (heads * (nope + v), rank)
    else:
        layer.update({"attn_k_b.weight": (heads, rank, nope), "attn_v_b.weight": (heads, v, rank)})
    layer.update({"attn_output.weight": (d, heads * v), "ffn_norm.weight": (d,)})
    if index < c["first_k_dense_replace"]:
        layer.update(
            {"ffn_gate.weight": (ff, d), "ffn_up.weight": (ff, d), "ffn_down.weight": (d, ff)}
        )
        return layer
    n, e, shared = c["n_routed_experts"], c["moe_intermediate_size"], c["n_shared_experts"]
    layer["ffn_gate_inp.weight"] = (n, d)
    if c.get("scoring_func") == "sigmoid":  # deepseek-v3's selection bias
        layer["exp_probs_b.bias"] = (n,)
    layer.update(
        {
            "ffn_gate_exps.weight": (n, e, d),
            "ffn_up_exps.weight": (n, e, d),
            "ffn_down_exps.weight": (n, d, e),
            "ffn_gate_shexp.weight": (e * shared, d),
            "ffn_up_shexp.weight": (e * shared, d),
            "ffn_down_shexp.weight": (d, e * shared),
        }
    )
    return layer


def _gemma4_keys(f: Fixture) -> dict:
    c, a = f.c, f.arch
    swa = [t == "sliding_attention" for t in c["layer_types"]]
    rope = c["rope_parameters"]
    full, local = c["global_head_dim"], c["head_dim"]
    return {
        f"{a}.block_count": c["num_hidden_layers"],
        f"{a}.context_length": c["max_position_embeddings"],
        f"{a}.embedding_length": c["hidden_size"],
        f"{a}.feed_forward_length": c["intermediate_size"],
        f"{a}.attention.head_count": c["num_attention_heads"],
        f"{a}.attention.head_count_kv": [
            c["num_key_value_heads"] if s else c["num_global_key_value_heads"] for s in swa
        ],
        f"{a}.rope.freq_base": rope["full_attention"]["rope_theta"],
        f"{a}.rope.freq_base_swa": rope["sliding_attention"]["rope_theta"],
        f"{a}.attention.layer_norm_rms_epsilon": c["rms_norm_eps"],
        f"{a}.attention.key_length": full,
        f"{a}.attention.value_length": full,
        f"{a}.final_logit_softcapping": c["final_logit_softcapping"],
        f"{a}.attention.sliding_window": c["sliding_window"],
        f"{a}.attention.shared_kv_layers": c["num_kv_shared_layers"],
        f"{a}.embedding_length_per_layer_input": c["hidden_size_per_layer_input"],
        f"{a}.attention.sliding_window_pattern": swa,
        f"{a}.attention.key_length_swa": local,
        f"{a}.attention.value_length_swa": local,
        f"{a}.rope.dimension_count": full,
        f"{a}.rope.dimension_count_swa": local,
    }


def _gemma4_layer(f: Fixture, index: int) -> dict[str, tuple[int, ...]]:
    """A block of gemma4 as the converter orders it: a global one with heads of
    ``global_head_dim`` and no ``attn_v`` (its values are the keys' projection)."""
    c = f.c
    d, ff, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    local = c["layer_types"][index] == "sliding_attention"
    head_dim = c["head_dim"] if local else c["global_head_dim"]
    kv = (c["num_key_value_heads"] if local else c["num_global_key_value_heads"]) * head_dim
    layer = {
        "attn_norm.weight": (d,),
        "layer_output_scale.weight": (1,),
        "ffn_down.weight": (d, ff),
        "ffn_gate.weight": (ff, d),
        "ffn_up.weight": (ff, d),
        "post_attention_norm.weight": (d,),
        "post_ffw_norm.weight": (d,),
        "ffn_norm.weight": (d,),
        "attn_k_norm.weight": (head_dim,),
        "attn_k.weight": (kv, d),
        "attn_output.weight": (d, heads * head_dim),
        "attn_q_norm.weight": (head_dim,),
        "attn_q.weight": (heads * head_dim, d),
    }
    if local or not c["attention_k_eq_v"]:
        layer["attn_v.weight"] = (kv, d)
    return layer


def gemma4_rope_freqs(c: dict) -> np.ndarray:
    """gemma4's proportional rope as the converter writes it: factors over the global layers'
    frequencies, 1 for the rotated quarter of each head and 1e30 (no rotation) for the rest."""
    rotated = int(
        c["global_head_dim"] * c["rope_parameters"]["full_attention"]["partial_rotary_factor"] / 2
    )
    return np.array([1.0] * rotated + [1e30] * (c["global_head_dim"] // 2 - rotated), np.float32)


def _keys(name: str, f: Fixture, as_converted: bool = False) -> dict:
    """The architecture's keys as the converter writes them for ``f.config``."""
    c, a = f.c, f.arch
    if a == "deepseek2":
        return _deepseek2_keys(f, f.legacy and not as_converted)
    if a == "gemma4":
        return _gemma4_keys(f)
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    keys = {
        f"{a}.block_count": c["num_hidden_layers"],
        f"{a}.context_length": c["max_position_embeddings"],
        f"{a}.embedding_length": c["hidden_size"],
        f"{a}.feed_forward_length": c["intermediate_size"],
        f"{a}.attention.head_count": c["num_attention_heads"],
        f"{a}.attention.head_count_kv": c["num_key_value_heads"],
        f"{a}.rope.freq_base": c["rope_theta"],
        f"{a}.attention.layer_norm_rms_epsilon": c["rms_norm_eps"],
    }
    if name in ("qwen3", "qwen3moe"):
        keys.update(
            {f"{a}.attention.key_length": head_dim, f"{a}.attention.value_length": head_dim}
        )
    if name == "qwen3moe":
        keys.update(
            {
                f"{a}.expert_count": c["num_experts"],
                f"{a}.expert_used_count": c["num_experts_per_tok"],
                f"{a}.expert_feed_forward_length": c["moe_intermediate_size"],
            }
        )
    if name == "mixtral":
        keys.update(
            {
                f"{a}.expert_count": c["num_local_experts"],
                f"{a}.expert_used_count": c["num_experts_per_tok"],
                f"{a}.rope.dimension_count": head_dim,
                f"{a}.vocab_size": N_VOCAB,
            }
        )
    if name == "gemma2":
        del keys[f"{a}.rope.freq_base"]  # not written: llama.cpp's default, 10000
        keys.update(
            {
                f"{a}.attention.key_length": head_dim,
                f"{a}.attention.value_length": head_dim,
                f"{a}.attention.sliding_window": c["sliding_window"],
                f"{a}.attn_logit_softcapping": c["attn_logit_softcapping"],
                f"{a}.final_logit_softcapping": c["final_logit_softcapping"],
            }
        )
    if a == "phi3":
        keys.update(
            {
                f"{a}.rope.dimension_count": _rope_dim(c),
                f"{a}.rope.scaling.original_context_length": c["original_max_position_embeddings"],
                f"{a}.attention.sliding_window": 0,  # the converter's mark of a model without one
            }
        )
        if "rope_scaling" in c:  # LongRoPE: the magnitude factor of its ratio of contexts
            ratio = c["max_position_embeddings"] / c["original_max_position_embeddings"]
            keys[f"{a}.rope.scaling.attn_factor"] = math.sqrt(
                1 + math.log(ratio) / math.log(c["original_max_position_embeddings"])
            )
    if name == "granite":
        keys.update(
            {
                f"{a}.rope.dimension_count": head_dim,
                f"{a}.vocab_size": N_VOCAB,
                f"{a}.attention.scale": c["attention_multiplier"],
                f"{a}.embedding_scale": c["embedding_multiplier"],
                f"{a}.residual_scale": c["residual_multiplier"],
                f"{a}.logit_scale": c["logits_scaling"],
            }
        )
    if name == "starcoder2":
        keys[f"{a}.attention.layer_norm_epsilon"] = c["norm_epsilon"]
    if name.startswith("olmo3"):
        rope = c["rope_scaling"]
        keys.update(
            {
                f"{a}.attention.sliding_window": c["sliding_window"],
                f"{a}.attention.sliding_window_pattern": [
                    t == "sliding_attention" for t in c["layer_types"]
                ],
                f"{a}.rope.scaling.type": "yarn",
                f"{a}.rope.scaling.factor": rope["factor"],
                f"{a}.rope.scaling.original_context_length": rope[
                    "original_max_position_embeddings"
                ],
                f"{a}.rope.scaling.yarn_beta_fast": rope["beta_fast"],
                f"{a}.rope.scaling.yarn_beta_slow": rope["beta_slow"],
                # the windowed layers' base: Olmo3Config's own, which the converter writes
                f"{a}.rope.freq_base_swa": OLMO3_LOCAL_ROPE_BASE,
            }
        )
    keys.update({f"{a}.{key}": value for key, value in f.ollama_keys})
    if name == "gpt-oss":
        rope = c["rope_scaling"]
        keys.update(
            {
                f"{a}.attention.key_length": head_dim,
                f"{a}.attention.value_length": head_dim,
                f"{a}.expert_count": c["num_local_experts"],
                f"{a}.expert_used_count": c["num_experts_per_tok"],
                f"{a}.expert_feed_forward_length": c["intermediate_size"],
                f"{a}.attention.sliding_window": c["sliding_window"],
                f"{a}.rope.scaling.type": "yarn",
                f"{a}.rope.scaling.factor": rope["factor"],
                f"{a}.rope.scaling.original_context_length": rope[
                    "original_max_position_embeddings"
                ],
                f"{a}.rope.scaling.yarn_beta_fast": rope["beta_fast"],
                f"{a}.rope.scaling.yarn_beta_slow": rope["beta_slow"],
            }
        )
    return keys


def _layer(name: str, f: Fixture) -> dict[str, tuple[int, ...]]:
    """Each block's tensors (after ``blk.N.``) with their numpy shapes (rows, then the row)."""
    c = f.c
    d, ff = c["hidden_size"], c["intermediate_size"]
    head_dim = c.get("head_dim") or d // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    attention = {
        "attn_norm.weight": (d,),
        "attn_q.weight": (q, d),
        "attn_k.weight": (kv, d),
        "attn_v.weight": (kv, d),
        "attn_output.weight": (d, q),
    }
    dense = {
        "ffn_norm.weight": (d,),
        "ffn_gate.weight": (ff, d),
        "ffn_up.weight": (ff, d),
        "ffn_down.weight": (d, ff),
    }
    if name == "qwen3":
        return {
            **attention,
            "attn_q_norm.weight": (head_dim,),
            "attn_k_norm.weight": (head_dim,),
            **dense,
        }
    if name == "qwen3moe":
        n, e = c["num_experts"], c["moe_intermediate_size"]
        return {
            **attention,
            "attn_q_norm.weight": (head_dim,),
            "attn_k_norm.weight": (head_dim,),
            "ffn_norm.weight": (d,),
            "ffn_gate_inp.weight": (n, d),
            "ffn_gate_exps.weight": (n, e, d),
            "ffn_up_exps.weight": (n, e, d),
            "ffn_down_exps.weight": (n, d, e),
        }
    if name == "mixtral":
        n = c["num_local_experts"]
        return {
            **attention,
            "ffn_norm.weight": (d,),
            "ffn_gate_inp.weight": (n, d),
            "ffn_gate_exps.weight": (n, ff, d),
            "ffn_up_exps.weight": (n, ff, d),
            "ffn_down_exps.weight": (n, d, ff),
        }
    if name == "gemma2":
        return {
            **attention,
            "post_attention_norm.weight": (d,),
            **dense,
            "post_ffw_norm.weight": (d,),
        }
    if name == "gpt-oss":
        n = c["num_local_experts"]
        return {
            "attn_norm.weight": (d,),
            "attn_q.weight": (q, d),
            "attn_q.bias": (q,),
            "attn_k.weight": (kv, d),
            "attn_k.bias": (kv,),
            "attn_v.weight": (kv, d),
            "attn_v.bias": (kv,),
            "attn_output.weight": (d, q),
            "attn_output.bias": (d,),
            "attn_sinks.weight": (c["num_attention_heads"],),
            "post_attention_norm.weight": (d,),
            "ffn_gate_inp.weight": (n, d),
            "ffn_gate_inp.bias": (n,),
            "ffn_gate_exps.weight": (n, ff, d),
            "ffn_gate_exps.bias": (n, ff),
            "ffn_up_exps.weight": (n, ff, d),
            "ffn_up_exps.bias": (n, ff),
            "ffn_down_exps.weight": (n, d, ff),
            "ffn_down_exps.bias": (n, d),
        }
    if f.arch == "phi3":
        return {
            "attn_norm.weight": (d,),
            "attn_qkv.weight": (q + 2 * kv, d),
            "attn_output.weight": (d, q),
            "ffn_norm.weight": (d,),
            "ffn_up.weight": (2 * ff, d),
            "ffn_down.weight": (d, ff),
        }
    if f.arch == "olmo2":
        return {
            "attn_q.weight": (q, d),
            "attn_k.weight": (kv, d),
            "attn_v.weight": (kv, d),
            "attn_output.weight": (d, q),
            "attn_q_norm.weight": (q,),
            "attn_k_norm.weight": (kv,),
            "post_attention_norm.weight": (d,),
            "ffn_gate.weight": (ff, d),
            "ffn_up.weight": (ff, d),
            "ffn_down.weight": (d, ff),
            "post_ffw_norm.weight": (d,),
        }
    if name == "starcoder2":
        return {
            "attn_norm.weight": (d,),
            "attn_norm.bias": (d,),
            "attn_q.weight": (q, d),
            "attn_q.bias": (q,),
            "attn_k.weight": (kv, d),
            "attn_k.bias": (kv,),
            "attn_v.weight": (kv, d),
            "attn_v.bias": (kv,),
            "attn_output.weight": (d, q),
            "attn_output.bias": (d,),
            "ffn_norm.weight": (d,),
            "ffn_norm.bias": (d,),
            "ffn_up.weight": (ff, d),
            "ffn_up.bias": (ff,),
            "ffn_down.weight": (d, ff),
            "ffn_down.bias": (d,),
        }
    return {**attention, **dense}  # granite: llama's block


def _rope_dim(c: dict) -> int:
    """phi3's rotated width of a head, as its converter counts it."""
    return int(c["partial_rotary_factor"] * c["hidden_size"]) // c["num_attention_heads"]


def tensor_shapes(name: str, as_converted: bool = False) -> dict[str, tuple[int, ...]]:
    """Every tensor of fixture ``name`` with its numpy shape, in the converter's order."""
    f = FIXTURES[name]
    c = f.c
    d = c["hidden_size"]
    shapes = {}
    if "rope_scaling" in c and f.arch == "phi3":  # LongRoPE's factors come first
        shapes.update({f"rope_factors_{n}.weight": (_rope_dim(c) // 2,) for n in ("long", "short")})
    if f.arch == "gemma4":  # the proportional rope's factors come first
        shapes["rope_freqs.weight"] = (c["global_head_dim"] // 2,)
    shapes["token_embd.weight"] = (N_VOCAB, d)
    for i in range(c["num_hidden_layers"]):
        if f.arch == "deepseek2":
            layer = _deepseek2_layer(f, i, f.legacy and not as_converted)
        elif f.arch == "gemma4":
            layer = _gemma4_layer(f, i)
        else:
            layer = _layer(name, f)
        shapes.update({f"blk.{i}.{n}": s for n, s in layer.items()})
    shapes["output_norm.weight"] = (d,)
    if name == "starcoder2":
        shapes["output_norm.bias"] = (d,)
    if not c["tie_word_embeddings"]:
        shapes["output.weight"] = (N_VOCAB, d)
    return shapes


def tokenizer_keys() -> dict:
    """The fixtures' byte-level vocabulary (256 bytes after 3 specials), as GGUF keys."""
    tokens = SPECIALS + byte_level_vocab()
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3] * len(SPECIALS) + [1] * 256,
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.add_bos_token": False,
    }


Q8_0, MXFP4 = 8, 39  # ggml types
# twice the values of the 4-bit e2m1 float, indexed by its bits (ggml's kvalues_mxfp4)
E2M1_TWICE = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.float32)
# the midpoints between the consecutive magnitudes (0, 1, 2, 3, 4, 6, 8, 12)
_E2M1_MIDPOINTS = (E2M1_TWICE[1:8] + E2M1_TWICE[0:7]) / 2


def mxfp4(values: np.ndarray) -> bytes:
    """``values`` (row-major, rows a multiple of 32 long) as MXFP4 blocks, as ggml's reference
    quantizer writes them: per 32 values a power-of-two scale (E8M0, from the largest's exponent)
    and 16 bytes of 4-bit e2m1 values, the block's first half in the low nibbles. ggml takes the
    code of least error, the first of equal ones; here each magnitude's nearest code comes from
    a search over the midpoints between them (a tie to the smaller, as the first), its sign in
    the top bit (zero keeps code 0, +0 coming before -0): the same bytes in linear memory."""
    x = values.astype(np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    with np.errstate(divide="ignore"):
        e = np.where(amax > 0, np.floor(np.log2(amax)) - 2 + 127, 0).astype(np.uint8)
    half = np.ldexp(np.float32(1.0), e.astype(np.int32) - 128).astype(np.float32)  # scale / 2
    scaled = x / half[:, None]  # exact: half is a power of two
    index = np.searchsorted(_E2M1_MIDPOINTS, np.abs(scaled), side="left").astype(np.uint8)
    index |= np.where((scaled < 0) & (index > 0), np.uint8(8), np.uint8(0))
    packed = index[:, :16] | (index[:, 16:] << 4)
    return np.concatenate([e[:, None], packed], axis=1).tobytes()


def q8_0(values: np.ndarray) -> bytes:
    """``values`` (row-major, rows a multiple of 32 long) as Q8_0 blocks, as ggml's reference
    quantizer writes them: per 32 values a float16 scale (the largest magnitude over 127) and
    32 int8s, each value times the scale's float32 inverse rounded half away from zero."""
    x = values.astype(np.float32).reshape(-1, 32)
    d = (np.abs(x).max(axis=1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inverse = np.where(
            d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)), np.float32(0)
        ).astype(np.float32)
    scaled = (x * inverse[:, None]).astype(np.float64)  # |x| + 0.5 is exact in float64
    q = np.copysign(np.floor(np.abs(scaled) + 0.5), scaled).astype(np.int8)
    return np.concatenate(
        [d.astype(np.float16).view(np.uint8).reshape(-1, 2), q.view(np.uint8)], axis=1
    ).tobytes()


def value_types(metadata: dict) -> dict:
    """The GGUF types of the fixtures' keys that ``make_gguf`` would not infer: as converted."""
    from ollamakit.lib.gguf import ValueType

    types = {
        "tokenizer.ggml.merges": ValueType.STRING,
        "tokenizer.ggml.token_type": ValueType.INT32,
    }
    types.update({k: ValueType.FLOAT32 for k, v in metadata.items() if isinstance(v, float)})
    return types


def build(
    name: str, path: str | Path, expert_type: str | None = None, as_converted: bool = False
) -> Path:
    """Write fixture ``name`` to ``path`` (the same bytes on every machine), its experts'
    tensors as ``expert_type`` blocks (Q8_0 or F16; the fixture's own by default);
    ``as_converted``: a ``legacy`` fixture in the current converter's form."""
    f = FIXTURES[name]
    expert_type = expert_type or f.expert_type
    rng = np.random.default_rng(f.seed)
    metadata = {
        "general.architecture": f.arch,
        "general.name": "tiny random fixture",
        "general.file_type": 1,
        "general.quantization_version": 2,
        **_keys(name, f, as_converted),
        **tokenizer_keys(),
    }
    types = value_types(metadata)
    tensors: dict[str, object] = {}
    for tensor, shape in tensor_shapes(name, as_converted).items():
        if tensor.startswith("rope_factors_"):  # the config's own numbers
            kind = tensor.split("_")[2].split(".")[0]
            tensors[tensor] = np.asarray(f.c["rope_scaling"][f"{kind}_factor"], np.float32)
            continue
        if tensor == "rope_freqs.weight":
            tensors[tensor] = gemma4_rope_freqs(f.c)
            continue
        if len(shape) == 1 or tensor.endswith(".bias"):  # norms near one, biases near zero: float32
            values = rng.standard_normal(shape) * 0.1 + (0.0 if tensor.endswith(".bias") else 1.0)
            tensors[tensor] = values.astype(np.float32)
            continue
        scale = (
            f.output_scale
            if tensor in ("output.weight",)
            or (tensor == "token_embd.weight" and f.c["tie_word_embeddings"])
            else 1.0
        )
        values = (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)
        if tensor.endswith("_exps.weight") and f.arch == "gpt-oss":  # as gpt-oss ships them
            tensors[tensor] = (mxfp4(values), MXFP4, shape[::-1])
        elif (
            tensor.endswith("_exps.weight") and expert_type == "Q8_0"
        ):  # (ne0, ne1, n_expert) in blocks
            tensors[tensor] = (q8_0(values), Q8_0, shape[::-1])
        elif ".ffn_gate_inp." in tensor:
            tensors[tensor] = values  # the router stays float32, as converted
        else:
            tensors[tensor] = values.astype(np.float16)
    return make_gguf(path, metadata, tensors, types=types)


# -- answers ----------------------------------------------------------------------------------


def _log_softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _step(logits) -> dict:
    """One step's greedy id, llama.cpp's-style top-2 margin of the raw logits, and the top
    ``TOP`` (id, logprob)."""
    logits = np.asarray(logits, np.float32)
    order = np.argsort(logits)[::-1]
    logprobs = _log_softmax(logits)
    return {
        "id": int(order[0]),
        "margin": float(logits[order[0]] - logits[order[1]]),
        "top": [[int(i), round(float(logprobs[i]), 5)] for i in order[:TOP]],
        "logprobs": logprobs,
    }


def llamacpp_steps(
    path: str, ids: list[int], tokens: int = TOKENS, num_ctx: int = NUM_CTX
) -> list[dict]:
    """llama.cpp's greedy continuation of ``ids`` with each step's margin and top logprobs:
    a float32 cache, two threads. Flash attention off: with it on, llama.cpp casts a float32
    cache's keys and values to float16 before attending, and the cache would be float16 in all
    but name."""
    from llama_cpp import Llama

    llm = Llama(
        path,
        n_ctx=num_ctx,
        n_threads=2,
        n_batch=512,
        flash_attn=False,
        logits_all=True,
        verbose=False,
        type_k=0,
        type_v=0,
    )
    llm.reset()
    llm.eval(ids)
    steps = []
    for _ in range(tokens):
        step = _step(llm.scores[llm.n_tokens - 1])
        steps.append(step)
        llm.eval([step["id"]])
    return steps


def ours_steps(runner, ids: list[int], tokens: int = TOKENS, num_ctx: int = NUM_CTX) -> list[dict]:
    """The same with an ollamakit runner (made with ``kv_cache_type`` f32)."""
    cache = runner.new_cache(num_ctx)
    logits = runner.forward([(cache, list(ids))])[0]
    steps = []
    for _ in range(tokens):
        step = _step(logits)
        steps.append(step)
        logits = runner.forward([(cache, [step["id"]])])[0]
    return steps


def record(out: Path, names=None) -> None:
    """Write llama.cpp's answers for every fixture (or for ``names``, keeping the others'
    answers of ``out``, which must come from this CPU kind), with this CPU beside them."""
    import tempfile

    import llama_cpp

    from ollamakit.testing.agreement import cpu

    fixtures = {}
    if names and out.exists():
        kept = json.loads(out.read_text())
        if kept["cpu"] != cpu():
            raise SystemExit(f"{out} was recorded on another CPU: record every fixture again")
        fixtures = {k: v for k, v in kept["fixtures"].items() if k in FIXTURES}
    with tempfile.TemporaryDirectory() as folder:
        for name in names or FIXTURES:
            path = build(name, Path(folder) / f"{name}.gguf")
            answers = []
            for text, num_ctx in cases(name):
                steps = llamacpp_steps(str(path), prompt_ids(text), num_ctx=num_ctx)
                answers.append(
                    {
                        "prompt": text,
                        **({"num_ctx": num_ctx} if num_ctx != NUM_CTX else {}),
                        "greedy_ids": [s["id"] for s in steps],
                        "margins": [round(s["margin"], 5) for s in steps],
                        "top_logprobs": [s["top"] for s in steps],
                    }
                )
            margins = [m for a in answers for m in a["margins"]]
            fixtures[name] = {
                "arch": FIXTURES[name].arch,
                "sha256": sha256(path),
                "steps_with_margin": f"{sum(m >= TIE_MARGIN for m in margins)}/{len(margins)}",
                "answers": answers,
            }
    document = {
        "generator": f"python -m ollamakit.testing.architectures record: llama-cpp-python {llama_cpp.__version__} "
        f"built on this machine; the fixtures of ollamakit.testing.architectures.build (sha256 of each file); "
        f"float32 cache with flash attention off, n_threads 2, n_ctx {NUM_CTX} (or the answer's num_ctx); prompts as byte ids; {TOKENS} "
        f"greedy tokens with the top-2 logit margin and the top {TOP} logprobs at each step; steps_with_margin: "
        f"the steps whose margin is at least {TIE_MARGIN}",
        "cpu": cpu(),
        "fixtures": fixtures,
    }
    # one answer a line: small, and a change shows as a changed answer
    text = json.dumps(document, indent=1)
    for name, fixture in fixtures.items():
        for answer in fixture["answers"]:
            text = text.replace(
                json.dumps(answer, indent=1).replace("\n", "\n" + " " * 4), json.dumps(answer), 1
            )
    out.write_text(text + "\n")


def sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the converter's file, for comparison --------------------------------------------------------


def convert(name: str, llama_cpp: Path, folder: Path) -> Path:
    """Fixture ``name`` made with ``transformers`` from its config class (its own random
    initialisation, seed 0), saved as safetensors and converted by llama.cpp's
    ``convert_hf_to_gguf.py`` (float16) with the fixtures' vocabulary in place of a tokenizer."""
    import torch
    import transformers

    f = FIXTURES[name]
    hf_dir = folder / f"{name}-hf"
    torch.manual_seed(f.seed)
    config = getattr(transformers, f.hf_config)(**f.c)
    model = getattr(transformers, f.hf_model)(config)
    model.save_pretrained(hf_dir, safe_serialization=True)
    if f.arch == "gemma4":  # its converter counts the vocabulary in tokenizer.json
        vocab = {"model": {"vocab": {str(i): i for i in range(N_VOCAB)}}, "added_tokens": []}
        (hf_dir / "tokenizer.json").write_text(json.dumps(vocab))
    sys.path.insert(0, str(llama_cpp))
    import convert_hf_to_gguf as converter
    from conversion.base import TextModel

    def fixture_vocab(self) -> None:
        keys = tokenizer_keys()
        w = self.gguf_writer
        w.add_tokenizer_model(keys["tokenizer.ggml.model"])
        w.add_tokenizer_pre(keys["tokenizer.ggml.pre"])
        w.add_token_list(keys["tokenizer.ggml.tokens"])
        w.add_token_types(keys["tokenizer.ggml.token_type"])
        w.add_token_merges([])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_pad_token_id(0)
        w.add_add_bos_token(False)

    prepare = TextModel.prepare_metadata

    def prepare_with_fixture_vocab(self, *args, **kwargs):
        self.set_vocab = types.MethodType(fixture_vocab, self)  # over any class's own
        return prepare(self, *args, **kwargs)

    TextModel.prepare_metadata = prepare_with_fixture_vocab
    out = folder / f"{name}-converted.gguf"
    sys.argv = ["convert_hf_to_gguf.py", str(hf_dir), "--outfile", str(out), "--outtype", "f16"]
    converter.main()
    return out


def compare_with_converter(name: str, converted: Path, built: Path) -> list[str]:
    """How ``built`` differs from the converter's file in the architecture's keys and in its
    tensor names and shapes; empty when they agree. (Both carry the fixtures' vocabulary, not a
    converted one, so the tokenizer keys say nothing.)"""
    from ollamakit.lib.gguf import GGUFFile

    with GGUFFile.open(converted) as a, GGUFFile.open(built) as b:
        prefix = FIXTURES[name].arch + "."
        ollama_only = {prefix + key for key, _ in FIXTURES[name].ollama_keys}
        keys_a = {k: v for k, v in a.metadata.items() if k.startswith(prefix)}
        keys_b = {
            k: v for k, v in b.metadata.items() if k.startswith(prefix) and k not in ollama_only
        }
        shapes_a = {t.name: tuple(t.shape) for t in a.tensors}
        shapes_b = {t.name: tuple(t.shape) for t in b.tensors}
    problems = []
    for key in sorted(keys_a.keys() | keys_b.keys()):
        va, vb = keys_a.get(key), keys_b.get(key)
        if isinstance(va, float) or isinstance(vb, float):
            same = (
                va is not None
                and vb is not None
                and abs(float(va) - float(vb)) <= 1e-6 * max(1.0, abs(float(va)))
            )
        else:
            same = va == vb
        if not same:
            problems.append(f"key {key}: converter {va!r}, fixture {vb!r}")
    for tensor in sorted(shapes_a.keys() | shapes_b.keys()):
        if shapes_a.get(tensor) != shapes_b.get(tensor):
            problems.append(
                f"tensor {tensor}: converter {shapes_a.get(tensor)}, fixture {shapes_b.get(tensor)}"
            )
    return problems


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if (
        command == "convert-check"
    ):  # python -m ollamakit.testing.architectures convert-check LLAMA_CPP [NAMES...]
        llama_cpp, names = Path(sys.argv[2]), sys.argv[3:] or list(FIXTURES)
        import tempfile

        work = Path(tempfile.mkdtemp(prefix="arch-check-"))
        for fixture in names:
            converted = convert(fixture, llama_cpp, work)
            built = build(fixture, work / f"{fixture}.gguf", as_converted=True)
            problems = compare_with_converter(fixture, converted, built)
            print(
                json.dumps(
                    {"fixture": fixture, "converted": str(converted), "differences": problems},
                    indent=1,
                )
            )
    elif command == "record":  # python -m ollamakit.testing.architectures record [OUT] [NAMES...]
        target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("tests/reference") / RECORDED
        record(target, sys.argv[3:] or None)
        print(f"wrote {target}")
    else:
        print(__doc__)
