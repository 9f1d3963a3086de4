"""Small random Hugging Face folders (qwen2, gemma3, BERT) for conversion tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ollamakit.testing.gguf_factory import byte_level_vocab

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _weights(rng, shapes: dict[str, tuple], dtype) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(dtype)
    return out


def _decoder_shapes(
    n_layers, d, ff, heads, kv_heads, head_dim, vocab, *, biases=False, gemma=False
):
    q, kv = heads * head_dim, kv_heads * head_dim
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (d,),
                p + "self_attn.q_proj.weight": (q, d),
                p + "self_attn.k_proj.weight": (kv, d),
                p + "self_attn.v_proj.weight": (kv, d),
                p + "self_attn.o_proj.weight": (d, q),
                p + "post_attention_layernorm.weight": (d,),
                p + "mlp.gate_proj.weight": (ff, d),
                p + "mlp.up_proj.weight": (ff, d),
                p + "mlp.down_proj.weight": (d, ff),
            }
        )
        if biases:
            shapes.update(
                {
                    p + "self_attn.q_proj.bias": (q,),
                    p + "self_attn.k_proj.bias": (kv,),
                    p + "self_attn.v_proj.bias": (kv,),
                }
            )
        if gemma:
            shapes.update(
                {
                    p + "pre_feedforward_layernorm.weight": (d,),
                    p + "post_feedforward_layernorm.weight": (d,),
                    p + "self_attn.q_norm.weight": (head_dim,),
                    p + "self_attn.k_norm.weight": (head_dim,),
                }
            )
    return shapes


def qwen2_folder(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = byte_level_vocab() + ["Ġt", "he"] + specials
    weights = _weights(
        rng, _decoder_shapes(2, 64, 128, 4, 2, 16, len(tokens), biases=True), np.float16
    )
    save_file(weights, str(folder / "model.safetensors"))
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": len(tokens),
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = {
        "added_tokens": [
            {"id": len(tokens) - 3 + i, "content": t, "special": True}
            for i, t in enumerate(specials)
        ],
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": QWEN2_SPLIT},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": False,
                    "use_regex": False,
                },
            ],
        },
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens[:-3])},
            "merges": [["Ġ", "t"], ["h", "e"]],
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "bos_token": None,
                "clean_up_tokenization_spaces": False,
                "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
            }
        )
    )
    return weights


def gemma3_folder(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + ["▁", "▁a", "b", "▁ab", "\n"]
    weights = _weights(
        rng, _decoder_shapes(2, 64, 128, 2, 1, 32, len(tokens), gemma=True), np.float32
    )
    save_file(weights, str(folder / "model.safetensors"))
    config = {
        "architectures": ["Gemma3ForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "sliding_window": 16,
        "vocab_size": len(tokens),
        "final_logit_softcapping": None,
    }
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = {
        "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(specials)]
        + [{"id": len(tokens) - 1, "content": "\n", "special": False}],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": None,
        "model": {
            "type": "BPE",
            "byte_fallback": True,
            "unk_token": "<unk>",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [["▁", "a"], ["▁a", "b"]],
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<bos>",
                "eos_token": "<eos>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "add_eos_token": False,
            }
        )
    )
    return weights


BERT_WORDS = [
    "[PAD]",
    "[unused0]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "##s",
    "a",
    "dog",
    ".",
    ",",
]


def bert_folder(
    folder: Path, seed: int = 0, *, pooling: str = "mean", normalize: bool = True, dtype=np.float32
) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d, ff, layers, ctx = 32, 64, 2, 64
    shapes = {
        "embeddings.word_embeddings.weight": (len(BERT_WORDS), d),
        "embeddings.position_embeddings.weight": (ctx, d),
        "embeddings.token_type_embeddings.weight": (2, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
        "pooler.dense.weight": (d, d),
        "pooler.dense.bias": (d,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            shapes[p + part + ".weight"], shapes[p + part + ".bias"] = (d, d), (d,)
        shapes.update(
            {
                p + "intermediate.dense.weight": (ff, d),
                p + "intermediate.dense.bias": (ff,),
                p + "output.dense.weight": (d, ff),
                p + "output.dense.bias": (d,),
            }
        )
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"], shapes[p + norm + ".bias"] = (d,), (d,)
    weights = _weights(rng, shapes, dtype)
    for name in weights:
        if name.endswith(".bias"):
            weights[name] = (0.1 * rng.standard_normal(weights[name].shape)).astype(np.float32)
        elif weights[name].ndim == 2 and "embeddings" in name:
            weights[name] = rng.standard_normal(weights[name].shape).astype(dtype)
    save_file(weights, str(folder / "model.safetensors"))
    config = {
        "architectures": ["BertModel"],
        "hidden_size": d,
        "intermediate_size": ff,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "max_position_embeddings": ctx,
        "type_vocab_size": 2,
        "vocab_size": len(BERT_WORDS),
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "do_lower_case": True,
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            }
        )
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": d,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
            }
        )
    )
    return weights


_NOMIC_NAMES = {
    "token_embd": "embeddings.word_embeddings",
    "token_types": "embeddings.token_type_embeddings",
    "token_embd_norm": "emb_ln",
    "attn_qkv": "attn.Wqkv",
    "attn_output": "attn.out_proj",
    "attn_output_norm": "norm1",
    "ffn_up": "mlp.fc11",
    "ffn_gate": "mlp.fc12",
    "ffn_down": "mlp.fc2",
    "layer_output_norm": "norm2",
}


def nomic_bert_folder(folder: Path, gguf_path: Path) -> None:
    """The weights of a ``nomic-bert`` GGUF (``ollamakit.testing.encoders.tiny_nomic_bert``) as
    nomic-ai's ``NomicBertModel`` folder: its tensor names and config keys, the same vocabulary,
    a sentence-transformers mean-pooling head."""
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing.encoders import NOMIC_SHAPE, WORDS

    folder.mkdir(parents=True, exist_ok=True)
    weights = {}
    with GGUFFile.open(gguf_path) as gguf:
        for info in gguf.tensors:
            stem, _, suffix = info.name.rpartition(".")
            if stem.startswith("blk."):
                _, index, part = stem.split(".", 2)
                name = f"encoder.layers.{index}.{_NOMIC_NAMES[part]}.{suffix}"
            else:
                name = f"{_NOMIC_NAMES[stem]}.{suffix}"
            weights[name] = np.ascontiguousarray(gguf.tensor(info.name), dtype=np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    s = NOMIC_SHAPE
    config = {
        "architectures": ["NomicBertModel"],
        "model_type": "nomic_bert",
        "n_embd": s["d"],
        "n_head": s["heads"],
        "n_layer": s["layers"],
        "n_inner": s["ff"],
        "n_positions": 8192,
        "max_trained_positions": s["ctx"],
        "rotary_emb_base": s["rope_base"],
        "layer_norm_epsilon": 1e-12,
        "type_vocab_size": 2,
        "vocab_size": len(WORDS),
        "activation_function": "swiglu",
        "causal": False,
        "qkv_proj_bias": False,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "prenorm": False,
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "do_lower_case": True,
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            }
        )
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": s["d"], "pooling_mode_mean_tokens": True})
    )
