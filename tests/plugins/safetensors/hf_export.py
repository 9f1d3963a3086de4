"""Turn a llama-architecture GGUF back into a Hugging Face folder (the inverse of conversion),
so that a test can convert the folder and compare the result with the GGUF it came from.

The folder is written the way Hugging Face lays it out: ``model.*`` tensor names, Q/K rows in
the halves order (llama.cpp's permutation undone), a ``tokenizer.json`` built from the GGUF's
vocabulary and merges, and a ``tokenizer_config.json`` naming the special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ollamakit.lib.gguf.reader import GGUFFile

LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# What SmolLM2's own tokenizer.json says: digits one by one, then GPT-2's byte-level split.
SMOLLM_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    rest = w.shape[1:]
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def hf_name(gguf_name: str) -> str:
    stem, kind = gguf_name.rsplit(".", 1)
    if stem.startswith("blk."):
        _, index, part = stem.split(".")
        return f"model.layers.{index}.{LAYER_NAMES[part]}.{kind}"
    return f"{TOP_NAMES[stem]}.{kind}"


def export_llama(
    gguf_path: Path, folder: Path, *, dtype=np.float16, pre_tokenizer=None
) -> dict[str, np.ndarray]:
    """Write the folder; returns the GGUF-layout arrays (in ``dtype``; norms float32) that a
    faithful conversion must reproduce bit for bit."""
    folder.mkdir(parents=True, exist_ok=True)
    with GGUFFile.open(gguf_path) as gguf:
        meta = dict(gguf.metadata)
        arrays = {t.name: np.asarray(gguf.tensor(t.name), dtype=np.float32) for t in gguf.tensors}
    heads = meta["llama.attention.head_count"]
    kv_heads = meta.get("llama.attention.head_count_kv", heads)
    expected, hf = {}, {}
    for name, array in arrays.items():
        if array.ndim > 1:
            array = array.astype(dtype)
        expected[name] = array
        if ".attn_q." in name:
            array = unpermute(array, heads)
        elif ".attn_k." in name:
            array = unpermute(array, kv_heads)
        hf[hf_name(name)] = np.ascontiguousarray(array)
    save_file(hf, str(folder / "model.safetensors"), metadata={"format": "pt"})

    tokens = meta["tokenizer.ggml.tokens"]
    n_embd = meta["llama.embedding_length"]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": n_embd,
        "intermediate_size": meta["llama.feed_forward_length"],
        "num_hidden_layers": meta["llama.block_count"],
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": meta["llama.context_length"],
        "rms_norm_eps": meta["llama.attention.layer_norm_rms_epsilon"],
        "rope_theta": meta.get("llama.rope.freq_base", 10000.0),
        "vocab_size": len(tokens),
        "tie_word_embeddings": "output.weight" not in arrays,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "torch_dtype": "float16" if dtype == np.float16 else "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))

    types = meta["tokenizer.ggml.token_type"]
    added = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, t in enumerate(tokens)
        if types[i] == 3
    ]
    tokenizer = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer
        or {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "post_processor": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": False,
            "use_regex": True,
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in meta.get("tokenizer.ggml.merges", [])],
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))

    def text(key):
        token_id = meta.get(f"tokenizer.ggml.{key}")
        return tokens[token_id] if isinstance(token_id, int) else None

    settings = {
        "bos_token": text("bos_token_id"),
        "eos_token": text("eos_token_id"),
        "unk_token": text("unknown_token_id"),
        "pad_token": text("padding_token_id"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": meta["llama.context_length"],
        "tokenizer_class": "GPT2Tokenizer",
    }
    if "tokenizer.chat_template" in meta:
        settings["chat_template"] = meta["tokenizer.chat_template"]
    (folder / "tokenizer_config.json").write_text(
        json.dumps({k: v for k, v in settings.items() if v is not None})
    )
    return expected


def folder_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}
