"""Seeded Hugging Face folders of the architectures whose conversion checks a fixture of
``ollamakit.testing.architectures``: phi3 with LongRoPE, gemma2, mixtral, qwen3moe, the dense
qwen3 the last is built on, olmo3 (sliding windows, YaRN), granite, starcoder2, gpt-oss (its
experts in MXFP4 as released, and as floats) and deepseek2 (deepseek-v3's shape and
deepseek-v2-lite's).

Each folder is what ``save_pretrained`` of transformers writes for the fixture's config:
``config.json`` (the config class's own keys, rope settings in ``rope_parameters`` as
transformers 5 writes them), ``model.safetensors`` with the module names and shapes of the
architecture's ``transformers`` class (each expert's matrices apart, or gpt-oss's all together),
float16 (MXFP4 blocks and exponents as bytes), and a
``tokenizer.json`` of the fixtures' byte-level vocabulary. ``record_arch_folder_logits.py``
checks the names and shapes against the class's own ``save_pretrained`` and records
transformers' answers for each folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ollamakit.testing import architectures as fixtures
from ollamakit.testing.gguf_factory import byte_level_vocab

# folder name: (the fixture whose config it has, model_type)
FOLDERS = {
    "phi3-longrope": ("phi3-longrope", "phi3"),
    "gemma2": ("gemma2", "gemma2"),
    "gemma4": ("gemma4", "gemma4_text"),
    "mixtral": ("mixtral", "mixtral"),
    "qwen3moe": ("qwen3moe", "qwen3_moe"),
    "qwen3": ("qwen3", "qwen3"),
    "olmo3": ("olmo3", "olmo3"),
    "granite": ("granite", "granite"),
    "starcoder2": ("starcoder2", "starcoder2"),
    "gpt-oss": ("gpt-oss", "gpt_oss"),  # MXFP4 experts, as the released models ship
    "gpt-oss-float": ("gpt-oss", "gpt_oss"),  # float experts
    "deepseek2": ("deepseek2", "deepseek_v3"),
    "deepseek2-lite": ("deepseek2-lite", "deepseek_v2"),
}
MXFP4_FOLDERS = ("gpt-oss",)


def config(name: str) -> dict:
    """The folder's config.json."""
    fixture_name, model_type = FOLDERS[name]
    f = fixtures.FIXTURES[fixture_name]
    c = dict(f.c)
    model = f.hf_model
    if name == "gemma4":
        return _gemma4_config(c, model, model_type)
    rope = {"rope_theta": c.pop("rope_theta"), "rope_type": "default"}
    if "rope_scaling" in c:
        rope = {**rope, **c.pop("rope_scaling")}
        rope.setdefault(
            "original_max_position_embeddings", c.get("original_max_position_embeddings")
        )
    if "partial_rotary_factor" in c:
        rope["partial_rotary_factor"] = c.pop("partial_rotary_factor")
    if name.startswith("gpt-oss"):
        # YaRN's ramp between whole dimensions, as ggml always computes it (the released
        # gpt-oss configs say ``truncate: false``, which llama.cpp runs this way too)
        rope["truncate"] = True
    if name == "olmo3":  # per kind of attention; the windowed layers' base is the global one's
        sliding = {"rope_type": "default", "rope_theta": rope["rope_theta"]}
        rope = {"full_attention": rope, "sliding_attention": sliding}
    extra = {}
    if name in MXFP4_FOLDERS:
        extra["quantization_config"] = {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router"]
            + ["model.embed_tokens", "lm_head"],
        }
    return {
        **c,
        "architectures": [model],
        "model_type": model_type,
        "rope_parameters": rope,
        "dtype": "float16",
        **extra,
    }


def _gemma4_config(c: dict, model: str, model_type: str) -> dict:
    """gemma4's config as transformers 5 saves it: rope settings per kind of attention already,
    and the global layers' head width and key/value heads in ``per_layer_config``."""
    del c["rope_theta"]
    full = {"head_dim": c.pop("global_head_dim")}
    full["num_key_value_heads"] = c.pop("num_global_key_value_heads")
    per_layer = {str(i): full for i, t in enumerate(c["layer_types"]) if t == "full_attention"}
    return {
        **c,
        "per_layer_config": per_layer,
        "architectures": [model],
        "model_type": model_type,
        "dtype": "float16",
    }


def _gemma4_layer(name: str, c: dict, i: int) -> dict[str, tuple[int, ...]]:
    """gemma4: a global layer's heads as ``per_layer_config`` gives them, and no ``v_proj``
    (``attention_k_eq_v``); no weight on the values' norm; a scalar on the block's output."""
    d, ff, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    own = c["per_layer_config"].get(str(i), {})
    hd = own.get("head_dim", c["head_dim"])
    kv = own.get("num_key_value_heads", c["num_key_value_heads"]) * hd
    layer = {
        "input_layernorm.weight": (d,),
        "layer_scalar": (1,),
        "mlp.down_proj.weight": (d, ff),
        "mlp.gate_proj.weight": (ff, d),
        "mlp.up_proj.weight": (ff, d),
        "post_attention_layernorm.weight": (d,),
        "post_feedforward_layernorm.weight": (d,),
        "pre_feedforward_layernorm.weight": (d,),
        "self_attn.k_norm.weight": (hd,),
        "self_attn.k_proj.weight": (kv, d),
        "self_attn.o_proj.weight": (d, heads * hd),
        "self_attn.q_norm.weight": (hd,),
        "self_attn.q_proj.weight": (heads * hd, d),
    }
    if str(i) not in c["per_layer_config"] or not c["attention_k_eq_v"]:
        layer["self_attn.v_proj.weight"] = (kv, d)
    return layer


def tensor_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Every tensor of the folder with its shape, as the transformers class names them."""
    c = config(name)
    if name == "gemma4":
        return _around_layers(c, lambda i: _gemma4_layer(name, c, i))
    if name.startswith(("gpt-oss", "deepseek2")):
        layer = _gpt_oss_layer if name.startswith("gpt-oss") else _deepseek2_layer
        return _around_layers(c, lambda i: layer(name, c, i))
    d, ff, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    head_dim = c.get("head_dim") or d // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        layer = {"input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,)}
        if name == "olmo3":  # norms after attention and the FFN, q/k norms over all heads
            layer = {
                "post_attention_layernorm.weight": (d,),
                "post_feedforward_layernorm.weight": (d,),
                "self_attn.q_norm.weight": (q,),
                "self_attn.k_norm.weight": (kv,),
            }
        if name == "phi3-longrope":
            layer["self_attn.qkv_proj.weight"] = (q + 2 * kv, d)
        else:
            layer.update(
                {
                    "self_attn.q_proj.weight": (q, d),
                    "self_attn.k_proj.weight": (kv, d),
                    "self_attn.v_proj.weight": (kv, d),
                }
            )
        layer["self_attn.o_proj.weight"] = (d, q)
        if name.startswith("qwen3"):
            layer.update(
                {"self_attn.q_norm.weight": (head_dim,), "self_attn.k_norm.weight": (head_dim,)}
            )
        if name == "starcoder2":  # LayerNorms and projections with biases, a plain FFN
            layer.update({k.replace(".weight", ".bias"): v[:1] for k, v in layer.items()})
            layer.update(
                {
                    "self_attn.o_proj.bias": (d,),
                    "mlp.c_fc.weight": (ff, d),
                    "mlp.c_fc.bias": (ff,),
                    "mlp.c_proj.weight": (d, ff),
                    "mlp.c_proj.bias": (d,),
                }
            )
        elif name == "phi3-longrope":
            layer.update({"mlp.gate_up_proj.weight": (2 * ff, d), "mlp.down_proj.weight": (d, ff)})
        elif name == "mixtral":
            layer["block_sparse_moe.gate.weight"] = (c["num_local_experts"], d)
            for e in range(c["num_local_experts"]):
                x = f"block_sparse_moe.experts.{e}."
                layer.update(
                    {x + "w1.weight": (ff, d), x + "w2.weight": (d, ff), x + "w3.weight": (ff, d)}
                )
        elif name == "qwen3moe":
            n, width = c["num_experts"], c["moe_intermediate_size"]
            layer["mlp.gate.weight"] = (n, d)
            for e in range(n):
                x = f"mlp.experts.{e}."
                layer.update(
                    {
                        x + "gate_proj.weight": (width, d),
                        x + "up_proj.weight": (width, d),
                        x + "down_proj.weight": (d, width),
                    }
                )
        else:
            layer.update(
                {
                    "mlp.gate_proj.weight": (ff, d),
                    "mlp.up_proj.weight": (ff, d),
                    "mlp.down_proj.weight": (d, ff),
                }
            )
        if name == "gemma2":
            layer.update(
                {
                    "pre_feedforward_layernorm.weight": (d,),
                    "post_feedforward_layernorm.weight": (d,),
                }
            )
        shapes.update({p + k: v for k, v in layer.items()})
    shapes["model.norm.weight"] = (d,)
    if name == "starcoder2":
        shapes["model.norm.bias"] = (d,)
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def _around_layers(c: dict, layer) -> dict[str, tuple[int, ...]]:
    d, vocab = c["hidden_size"], c["vocab_size"]
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(c["num_hidden_layers"]):
        shapes.update({f"model.layers.{i}.{k}": v for k, v in layer(i).items()})
    shapes["model.norm.weight"] = (d,)
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def _gpt_oss_layer(name: str, c: dict, i: int) -> dict[str, tuple[int, ...]]:
    """gpt-oss: biased attention with sinks, a biased router, every expert's gate and up rows
    interleaved in one tensor; MXFP4 experts as blocks of 16 bytes (32 values) and their
    exponents, float experts stored (experts, row, rows)."""
    d, ff, n = c["hidden_size"], c["intermediate_size"], c["num_local_experts"]
    heads = c["num_attention_heads"]
    q, kv = heads * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    layer = {"input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,)}
    for proj, rows in (("q", q), ("k", kv), ("v", kv)):
        layer.update(
            {f"self_attn.{proj}_proj.weight": (rows, d), f"self_attn.{proj}_proj.bias": (rows,)}
        )
    layer.update({"self_attn.o_proj.weight": (d, q), "self_attn.o_proj.bias": (d,)})
    layer["self_attn.sinks"] = (heads,)
    layer.update({"mlp.router.weight": (n, d), "mlp.router.bias": (n,)})
    x = "mlp.experts."
    if name in MXFP4_FOLDERS:
        layer.update(
            {
                x + "gate_up_proj_blocks": (n, 2 * ff, d // 32, 16),
                x + "gate_up_proj_scales": (n, 2 * ff, d // 32),
                x + "down_proj_blocks": (n, d, ff // 32, 16),
                x + "down_proj_scales": (n, d, ff // 32),
            }
        )
    else:
        layer.update({x + "gate_up_proj": (n, d, 2 * ff), x + "down_proj": (n, ff, d)})
    layer.update({x + "gate_up_proj_bias": (n, 2 * ff), x + "down_proj_bias": (n, d)})
    return layer


def _deepseek2_layer(name: str, c: dict, i: int) -> dict[str, tuple[int, ...]]:
    """deepseek2: latent attention (a low-rank query pair, or one matrix for the lite model),
    leading dense layers, then routed experts apart and shared ones together."""
    d, heads = c["hidden_size"], c["num_attention_heads"]
    rank, nope, pe, v = (
        c[k] for k in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    )
    layer = {"input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,)}
    if c.get("q_lora_rank"):
        r = c["q_lora_rank"]
        layer.update(
            {
                "self_attn.q_a_proj.weight": (r, d),
                "self_attn.q_a_layernorm.weight": (r,),
                "self_attn.q_b_proj.weight": (heads * (nope + pe), r),
            }
        )
    else:
        layer["self_attn.q_proj.weight"] = (heads * (nope + pe), d)
    layer.update(
        {
            "self_attn.kv_a_proj_with_mqa.weight": (rank + pe, d),
            "self_attn.kv_a_layernorm.weight": (rank,),
            "self_attn.kv_b_proj.weight": (heads * (nope + v), rank),
            "self_attn.o_proj.weight": (d, heads * v),
        }
    )
    if i < c["first_k_dense_replace"]:
        ff = c["intermediate_size"]
        layer.update(
            {
                "mlp.gate_proj.weight": (ff, d),
                "mlp.up_proj.weight": (ff, d),
                "mlp.down_proj.weight": (d, ff),
            }
        )
        return layer
    n, e = c["n_routed_experts"], c["moe_intermediate_size"]
    layer["mlp.gate.weight"] = (n, d)
    if c.get("scoring_func") == "sigmoid":
        layer["mlp.gate.e_score_correction_bias"] = (n,)
    for j in range(n):
        x = f"mlp.experts.{j}."
        layer.update(
            {
                x + "gate_proj.weight": (e, d),
                x + "up_proj.weight": (e, d),
                x + "down_proj.weight": (d, e),
            }
        )
    shared = e * c["n_shared_experts"]
    x = "mlp.shared_experts."
    layer.update(
        {
            x + "gate_proj.weight": (shared, d),
            x + "up_proj.weight": (shared, d),
            x + "down_proj.weight": (d, shared),
        }
    )
    return layer


def write(name: str, folder: Path, seed: int = 0) -> Path:
    """Write folder ``name`` (the same bytes on every machine)."""
    folder.mkdir(parents=True, exist_ok=True)
    c = config(name)
    scale = fixtures.FIXTURES[FOLDERS[name][0]].output_scale
    rng = np.random.default_rng(seed)
    weights = {}
    for tensor, shape in tensor_shapes(name).items():
        if tensor.endswith("_blocks"):  # random 4-bit codes
            weights[tensor] = rng.integers(0, 256, shape, dtype=np.uint8)
            continue
        if tensor.endswith("_scales"):  # exponents of 2^-5 or 2^-4: values near 1/sqrt(row)
            weights[tensor] = rng.integers(122, 124, shape, dtype=np.uint8)
            continue
        if tensor.endswith(("bias", ".sinks")):
            values = rng.standard_normal(shape) * 0.1
        elif len(shape) == 1:  # gemma2 multiplies by 1 + w, the others by w
            values = rng.standard_normal(shape) * 0.1 + (0.0 if name == "gemma2" else 1.0)
        else:
            widen = tensor == "lm_head.weight" or (
                tensor == "model.embed_tokens.weight" and c["tie_word_embeddings"]
            )
            # each row of a matrix is what one output sums over; gpt-oss's float experts are
            # stored transposed, (experts, row, rows)
            row = (
                shape[-2]
                if tensor.endswith(("experts.gate_up_proj", "experts.down_proj"))
                else shape[-1]
            )
            values = rng.standard_normal(shape) * (scale if widen else 1.0) / np.sqrt(row)
        weights[tensor] = values.astype(np.float16)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(c, indent=1))
    specials = fixtures.SPECIALS
    tokens = specials + byte_level_vocab()
    tokenizer = {
        "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(specials)],
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [],
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": specials[1], "eos_token": specials[2], "pad_token": specials[0]})
    )
    return folder
