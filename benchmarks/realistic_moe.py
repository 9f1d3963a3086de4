"""A random qwen3moe of realistic shape for the engine benchmark (``bench_engine.py --models
qwen3moe``), built once and cached: a mixture of experts whose decode reads a realistic share of
its experts per token, quantized by the project's own quantizer."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ollamakit.testing.architectures import N_VOCAB, tokenizer_keys, value_types

# qwen3:30b-a3b's block (width 2048, 32 query and 4 key/value heads of 128, experts of width 768,
# 8 chosen per token) with 48 experts and 8 layers instead of 128 and 48: at Q4_K_M a file of
# about 1.2 GB, whose decode reads a realistic share of its experts per token.
REALISTIC_QWEN3MOE = dict(
    n_layer=8,
    n_embd=2048,
    n_head=32,
    n_head_kv=4,
    head_dim=128,
    n_expert=48,
    n_expert_used=8,
    n_ff_exp=768,
    n_vocab=32000,
)


def realistic_qwen3moe(target: Path, *, threads: int | None = None) -> Path:
    """A random qwen3moe of ``REALISTIC_QWEN3MOE``'s shape at Q4_K_M (ollamakit's quantizer, the
    same blocks as llama-quantize's), cached at ``target``; its float16 source is written beside
    it, tensor by tensor, and removed once quantized."""
    if target.exists():
        return target
    from ollamakit.lib.gguf import GGUFWriter
    from ollamakit_quant import quantize_file

    s = REALISTIC_QWEN3MOE
    a, d, e = "qwen3moe", s["n_embd"], s["n_expert"]
    q, kv = s["n_head"] * s["head_dim"], s["n_head_kv"] * s["head_dim"]
    filler = [f"<t{i}>" for i in range(s["n_vocab"] - N_VOCAB)]
    metadata = {
        "general.architecture": a,
        "general.name": "random qwen3moe of realistic shape",
        "general.file_type": 1,
        f"{a}.block_count": s["n_layer"],
        f"{a}.context_length": 4096,
        f"{a}.embedding_length": d,
        f"{a}.feed_forward_length": 6144,
        f"{a}.attention.head_count": s["n_head"],
        f"{a}.attention.head_count_kv": s["n_head_kv"],
        f"{a}.attention.key_length": s["head_dim"],
        f"{a}.attention.value_length": s["head_dim"],
        f"{a}.rope.freq_base": 1000000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.expert_count": e,
        f"{a}.expert_used_count": s["n_expert_used"],
        f"{a}.expert_feed_forward_length": s["n_ff_exp"],
        **tokenizer_keys(),
    }
    metadata["tokenizer.ggml.tokens"] = metadata["tokenizer.ggml.tokens"] + filler
    metadata["tokenizer.ggml.token_type"] = metadata["tokenizer.ggml.token_type"] + [1] * len(
        filler
    )
    shapes = {"token_embd.weight": (s["n_vocab"], d)}
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        shapes.update(
            {
                p + "attn_norm.weight": (d,),
                p + "attn_q.weight": (q, d),
                p + "attn_k.weight": (kv, d),
                p + "attn_v.weight": (kv, d),
                p + "attn_output.weight": (d, q),
                p + "attn_q_norm.weight": (s["head_dim"],),
                p + "attn_k_norm.weight": (s["head_dim"],),
                p + "ffn_norm.weight": (d,),
                p + "ffn_gate_inp.weight": (e, d),
                p + "ffn_gate_exps.weight": (e, s["n_ff_exp"], d),
                p + "ffn_up_exps.weight": (e, s["n_ff_exp"], d),
                p + "ffn_down_exps.weight": (e, d, s["n_ff_exp"]),
            }
        )
    shapes.update({"output_norm.weight": (d,), "output.weight": (s["n_vocab"], d)})

    def values(name: str, shape: tuple[int, ...]):
        def make():
            rng = np.random.default_rng(
                zlib.crc32(name.encode())
            )  # each tensor its own seeded stream
            if len(shape) == 1:
                return (1.0 + 0.1 * rng.standard_normal(shape, np.float32)).astype(np.float32)
            out = rng.standard_normal(shape, np.float32) / np.float32(np.sqrt(shape[-1]))
            return out if ".ffn_gate_inp." in name else out.astype(np.float16)

        return make

    source = target.with_suffix(".f16.gguf")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(source)
    writer.add_metadata(metadata, value_types(metadata))
    for name, shape in shapes.items():
        kind = 0 if len(shape) == 1 or ".ffn_gate_inp." in name else 1  # F32 (norms, router) or F16
        writer.add_tensor(name, values(name, shape), kind, shape[::-1])
    writer.write()
    temp = target.with_suffix(".tmp")
    quantize_file(source, temp, "q4_K_M", threads=threads)
    source.unlink()
    temp.rename(target)
    return target
