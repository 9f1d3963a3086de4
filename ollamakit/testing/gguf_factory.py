"""Tiny, valid GGUF files for tests: any metadata and tensors, or a small random llama model.

make_gguf(path, {"general.architecture": "llama"}, {"w": np.zeros((4, 32), np.float32)})
tiny_llama(path)  # 2 layers, 64-dim, byte-level BPE vocabulary; runs in any llama engine
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ollamakit.lib.gguf.constants import ValueType
from ollamakit.lib.gguf.writer import GGUFWriter


def make_gguf(
    path: str | Path,
    metadata: Mapping[str, object] | None = None,
    tensors: Mapping[str, object] | None = None,
    *,
    types: Mapping[str, int] | None = None,
    alignment: int = 32,
) -> Path:
    """Write a GGUF v3 file.

    ``metadata`` values are plain Python values; their GGUF types are inferred (scalar ints are
    UINT32) unless given in ``types`` (for lists, the element type). ``tensors`` maps a name to a
    float32/float16 array (row-major) or to ``(raw_bytes, ggml_type, ggml_shape)``.
    """
    writer = GGUFWriter(path, alignment=alignment)
    writer.add_metadata(metadata or {}, types)
    for name, tensor in (tensors or {}).items():
        if isinstance(tensor, tuple):
            raw, ggml_type, shape = tensor
            writer.add_tensor(name, raw, ggml_type, shape)
        else:
            writer.add_tensor(name, np.asarray(tensor))
    return writer.write()


def byte_level_vocab() -> list[str]:
    """The 256 GPT-2 byte-level token strings (bytes mapped to printable characters).

    Written out here rather than taken from the tokenizer plugin: test models built with it
    check that tokenizer against an independent statement of the mapping."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def tiny_llama(
    path: str | Path,
    *,
    n_layers: int = 2,
    n_embd: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    n_ff: int = 128,
    context_length: int = 256,
    dtype=np.float32,
    seed: int = 0,
    extra_metadata: Mapping[str, object] | None = None,
    chat_template: str | None = None,
    endless: bool = False,
) -> Path:
    """A small random llama model with a byte-level BPE tokenizer (256 bytes + 3 specials).

    ``endless``: the specials' output rows are zero, so greedy decoding (temperature 0) never
    ends an answer on its own: a test can stop it midway, or count on ``num_predict``."""
    rng = np.random.default_rng(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + byte_level_vocab()
    n_vocab = len(tokens)
    head_dim = n_embd // n_heads
    metadata: dict[str, object] = {
        "general.architecture": "llama",
        "general.name": "tiny-llama",
        "general.file_type": 1 if dtype == np.float16 else 0,
        "llama.block_count": n_layers,
        "llama.context_length": context_length,
        "llama.embedding_length": n_embd,
        "llama.feed_forward_length": n_ff,
        "llama.attention.head_count": n_heads,
        "llama.attention.head_count_kv": n_kv_heads,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.freq_base": 10000.0,
        "llama.rope.dimension_count": head_dim,
        "llama.vocab_size": n_vocab,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3] * len(specials) + [1] * 256,
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.add_bos_token": False,
        "general.quantization_version": 2,
    }
    if chat_template is not None:
        metadata["tokenizer.chat_template"] = chat_template
    metadata.update(extra_metadata or {})
    types = {
        "tokenizer.ggml.merges": ValueType.STRING,
        "tokenizer.ggml.token_type": ValueType.INT32,
    }

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(dtype)

    def norm() -> np.ndarray:
        return np.ones(n_embd, dtype=np.float32)  # norms stay F32, as llama.cpp writes them

    kv_dim = head_dim * n_kv_heads
    tensors: dict[str, object] = {"token_embd.weight": weight(n_vocab, n_embd)}
    for i in range(n_layers):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": norm(),
                f"blk.{i}.attn_q.weight": weight(n_embd, n_embd),
                f"blk.{i}.attn_k.weight": weight(kv_dim, n_embd),
                f"blk.{i}.attn_v.weight": weight(kv_dim, n_embd),
                f"blk.{i}.attn_output.weight": weight(n_embd, n_embd),
                f"blk.{i}.ffn_norm.weight": norm(),
                f"blk.{i}.ffn_gate.weight": weight(n_ff, n_embd),
                f"blk.{i}.ffn_up.weight": weight(n_ff, n_embd),
                f"blk.{i}.ffn_down.weight": weight(n_embd, n_ff),
            }
        )
    tensors["output_norm.weight"] = norm()
    tensors["output.weight"] = weight(n_vocab, n_embd)
    if (
        endless
    ):  # a zero logit loses to the largest of 256 random ones (all below zero: p = 2**-256)
        tensors["output.weight"][: len(specials)] = 0
    return make_gguf(path, metadata, tensors, types=types)
