"""Random mixtures of experts of realistic shape for the engine benchmark (``bench_engine.py
--models qwen3moe,gptoss``), built once and cached: models whose decode reads a realistic share of
their experts per token, written by the project's own GGUF writer and quantizers. qwen3moe's
experts are Q4_K_M (``ollamakit_quant``); gpt-oss's are MXFP4, as it ships."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ollamakit.testing.architectures import MXFP4, N_VOCAB, mxfp4, tokenizer_keys, value_types

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


def _tokenizer(n_vocab: int) -> dict:
    """The fixtures' tokenizer, its vocabulary padded with normal tokens to ``n_vocab`` (the
    output matrix's rows), so a realistic vocabulary costs what it would in a real model."""
    keys = tokenizer_keys()
    filler = [f"<t{i}>" for i in range(n_vocab - N_VOCAB)]
    keys["tokenizer.ggml.tokens"] = keys["tokenizer.ggml.tokens"] + filler
    keys["tokenizer.ggml.token_type"] = keys["tokenizer.ggml.token_type"] + [1] * len(filler)
    return keys


def _write_q4_k_m(target: Path, metadata: dict, shapes: dict, values, threads: int | None) -> Path:
    """Write the float16 source beside ``target`` tensor by tensor (norms and routers float32;
    ``values(name, shape)`` gives each tensor's maker), quantize it to Q4_K_M with ollamakit's
    quantizer (the same blocks as llama-quantize's), remove the source, and put the result at
    ``target`` in one rename, so a cut-short build never leaves a model that looks finished."""
    from ollamakit.lib.gguf import GGUFWriter
    from ollamakit_quant import quantize_file

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


def realistic_qwen3moe(target: Path, *, threads: int | None = None) -> Path:
    """A random qwen3moe of ``REALISTIC_QWEN3MOE``'s shape at Q4_K_M (ollamakit's quantizer, the
    same blocks as llama-quantize's), cached at ``target``; its float16 source is written beside
    it, tensor by tensor, and removed once quantized."""
    if target.exists():
        return target
    s = REALISTIC_QWEN3MOE
    a, d, e = "qwen3moe", s["n_embd"], s["n_expert"]
    q, kv = s["n_head"] * s["head_dim"], s["n_head_kv"] * s["head_dim"]
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
        **_tokenizer(s["n_vocab"]),
    }
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

    return _write_q4_k_m(target, metadata, shapes, values, threads)


# gpt-oss-20b's block (width 2880, 64 query and 8 key/value heads of 64 with a learned sink each,
# 32 experts of width 2880, 4 chosen per token, a 128-token window on every other layer, YaRN 32x
# over 4096 positions) with 2 layers instead of 24 (one windowed, one full) and a 32000-token
# vocabulary instead of 201088: about 1.3 GB, as Ollama's library ships gpt-oss (MXFP4 experts,
# 16-bit matrices beside them: float16 here, for its bfloat16).
REALISTIC_GPTOSS = dict(
    n_layer=2,
    n_embd=2880,
    n_head=64,
    n_head_kv=8,
    head_dim=64,
    n_expert=32,
    n_expert_used=4,
    n_ff_exp=2880,
    n_vocab=32000,
    sliding_window=128,
)


def realistic_gptoss(target: Path) -> Path:
    """A random gpt-oss of ``REALISTIC_GPTOSS``'s shape, cached at ``target``: experts as MXFP4
    blocks of seeded normal values, the other matrices float16, norms, sinks,
    biases and the router float32, written tensor by tensor (nothing else held in memory)."""
    if target.exists():
        return target
    from ollamakit.lib.gguf import GGUFWriter

    s = REALISTIC_GPTOSS
    a, d, e, ff = "gpt-oss", s["n_embd"], s["n_expert"], s["n_ff_exp"]
    q, kv = s["n_head"] * s["head_dim"], s["n_head_kv"] * s["head_dim"]
    metadata = {
        "general.architecture": a,
        "general.name": "random gpt-oss of realistic shape",
        "general.file_type": 1,
        "general.quantization_version": 2,
        f"{a}.block_count": s["n_layer"],
        f"{a}.context_length": 131072,
        f"{a}.embedding_length": d,
        f"{a}.feed_forward_length": ff,
        f"{a}.attention.head_count": s["n_head"],
        f"{a}.attention.head_count_kv": s["n_head_kv"],
        f"{a}.attention.key_length": s["head_dim"],
        f"{a}.attention.value_length": s["head_dim"],
        f"{a}.rope.freq_base": 150000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{a}.expert_count": e,
        f"{a}.expert_used_count": s["n_expert_used"],
        f"{a}.expert_feed_forward_length": ff,
        f"{a}.attention.sliding_window": s["sliding_window"],
        f"{a}.rope.scaling.type": "yarn",
        f"{a}.rope.scaling.factor": 32.0,
        f"{a}.rope.scaling.original_context_length": 4096,
        f"{a}.rope.scaling.yarn_beta_fast": 32.0,
        f"{a}.rope.scaling.yarn_beta_slow": 1.0,
        **_tokenizer(s["n_vocab"]),
    }
    shapes = {"token_embd.weight": (s["n_vocab"], d)}
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        shapes.update(
            {
                p + "attn_norm.weight": (d,),
                p + "attn_q.weight": (q, d),
                p + "attn_q.bias": (q,),
                p + "attn_k.weight": (kv, d),
                p + "attn_k.bias": (kv,),
                p + "attn_v.weight": (kv, d),
                p + "attn_v.bias": (kv,),
                p + "attn_output.weight": (d, q),
                p + "attn_output.bias": (d,),
                p + "attn_sinks.weight": (s["n_head"],),
                p + "post_attention_norm.weight": (d,),
                p + "ffn_gate_inp.weight": (e, d),
                p + "ffn_gate_inp.bias": (e,),
                p + "ffn_gate_exps.weight": (e, ff, d),
                p + "ffn_gate_exps.bias": (e, ff),
                p + "ffn_up_exps.weight": (e, ff, d),
                p + "ffn_up_exps.bias": (e, ff),
                p + "ffn_down_exps.weight": (e, d, ff),
                p + "ffn_down_exps.bias": (e, d),
            }
        )
    shapes.update({"output_norm.weight": (d,), "output.weight": (s["n_vocab"], d)})

    def values(name: str, shape: tuple[int, ...]):
        def make():
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            if len(shape) == 1 or name.endswith(".bias"):  # norms near one, the rest near zero
                centre = 1.0 if name.endswith("norm.weight") else 0.0
                return (centre + 0.1 * rng.standard_normal(shape, np.float32)).astype(np.float32)
            scale = np.float32(1 / np.sqrt(shape[-1]))
            if name.endswith("_exps.weight"):  # one expert at a time: a tenth of a GB each
                return b"".join(
                    mxfp4(rng.standard_normal(shape[1:], np.float32) * scale)
                    for _ in range(shape[0])
                )
            out = rng.standard_normal(shape, np.float32) * scale
            return out if ".ffn_gate_inp." in name else out.astype(np.float16)

        return make

    def kind(name: str, shape: tuple[int, ...]) -> int:
        if name.endswith("_exps.weight"):
            return MXFP4
        plain = len(shape) == 1 or name.endswith(".bias") or ".ffn_gate_inp." in name
        return 0 if plain else 1  # F32 or F16

    writer = GGUFWriter(target)
    writer.add_metadata(metadata, value_types(metadata))
    for name, shape in shapes.items():
        writer.add_tensor(name, values(name, shape), kind(name, shape), shape[::-1])
    return writer.write()  # atomic: a file at ``target`` is always whole


# deepseek-v2-lite's block (width 2048, 16 heads whose queries come through one matrix, not a
# low-rank pair; multi-head latent attention over a 512-wide latent and a 64-wide shared rope
# key, 128 wide per head without rope and 128 per value; 64 routed experts of width 1408, 6
# chosen by a softmax router, beside 2 shared ones; YaRN 40x over 4096 positions with mscale
# 0.707) with 2 layers instead of 27, both with experts (the real model's first layer is dense),
# and a 32000-token vocabulary instead of 102400: at Q4_K_M about 0.8 GB, written as llama.cpp's
# current converter writes deepseek2 (``attn_k_b``/``attn_v_b``).
REALISTIC_DEEPSEEK2 = dict(
    n_layer=2,
    n_embd=2048,
    n_head=16,
    kv_lora_rank=512,
    qk_nope=128,
    qk_rope=64,
    v_head=128,
    n_expert=64,
    n_expert_used=6,
    n_expert_shared=2,
    n_ff_exp=1408,
    n_ff=10944,
    n_vocab=32000,
)


def realistic_deepseek2(target: Path, *, threads: int | None = None) -> Path:
    """A random deepseek2 of ``REALISTIC_DEEPSEEK2``'s shape at Q4_K_M, cached at ``target``,
    built as ``realistic_qwen3moe`` is (a float16 source beside it, removed once quantized)."""
    if target.exists():
        return target
    s = REALISTIC_DEEPSEEK2
    a, d, e, ff = "deepseek2", s["n_embd"], s["n_expert"], s["n_ff_exp"]
    heads, rank, nope, pe, v = (
        s[k] for k in ("n_head", "kv_lora_rank", "qk_nope", "qk_rope", "v_head")
    )
    shared = ff * s["n_expert_shared"]
    metadata = {
        "general.architecture": a,
        "general.name": "random deepseek2 of realistic shape",
        "general.file_type": 1,
        f"{a}.block_count": s["n_layer"],
        f"{a}.context_length": 163840,
        f"{a}.embedding_length": d,
        f"{a}.feed_forward_length": s["n_ff"],
        f"{a}.attention.head_count": heads,
        f"{a}.attention.head_count_kv": 1,  # one latent for every head
        f"{a}.attention.q_lora_rank": 0,  # queries through one matrix
        f"{a}.attention.kv_lora_rank": rank,
        f"{a}.attention.key_length": rank + pe,
        f"{a}.attention.value_length": rank,
        f"{a}.attention.key_length_mla": nope + pe,
        f"{a}.attention.value_length_mla": v,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.vocab_size": s["n_vocab"],
        f"{a}.leading_dense_block_count": 0,
        f"{a}.expert_count": e,
        f"{a}.expert_used_count": s["n_expert_used"],
        f"{a}.expert_shared_count": s["n_expert_shared"],
        f"{a}.expert_feed_forward_length": ff,
        f"{a}.expert_gating_func": 1,  # softmax
        f"{a}.expert_weights_scale": 1.0,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.rope.dimension_count": pe,
        f"{a}.rope.scaling.type": "yarn",
        f"{a}.rope.scaling.factor": 40.0,
        f"{a}.rope.scaling.original_context_length": 4096,
        f"{a}.rope.scaling.yarn_beta_fast": 32.0,
        f"{a}.rope.scaling.yarn_beta_slow": 1.0,
        f"{a}.rope.scaling.yarn_log_multiplier": 0.0707,
        **_tokenizer(s["n_vocab"]),
    }
    shapes = {"token_embd.weight": (s["n_vocab"], d)}
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        shapes.update(
            {
                p + "attn_norm.weight": (d,),
                p + "attn_q.weight": (heads * (nope + pe), d),
                p + "attn_kv_a_mqa.weight": (rank + pe, d),
                p + "attn_kv_a_norm.weight": (rank,),
                p + "attn_k_b.weight": (heads, rank, nope),
                p + "attn_v_b.weight": (heads, v, rank),
                p + "attn_output.weight": (d, heads * v),
                p + "ffn_norm.weight": (d,),
                p + "ffn_gate_inp.weight": (e, d),
                p + "ffn_gate_exps.weight": (e, ff, d),
                p + "ffn_up_exps.weight": (e, ff, d),
                p + "ffn_down_exps.weight": (e, d, ff),
                p + "ffn_gate_shexp.weight": (shared, d),
                p + "ffn_up_shexp.weight": (shared, d),
                p + "ffn_down_shexp.weight": (d, shared),
            }
        )
    shapes.update({"output_norm.weight": (d,), "output.weight": (s["n_vocab"], d)})

    def values(name: str, shape: tuple[int, ...]):
        def make():
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            if len(shape) == 1:
                return (1.0 + 0.1 * rng.standard_normal(shape, np.float32)).astype(np.float32)
            scale = np.float32(1 / np.sqrt(shape[-1]))
            if ".ffn_gate_inp." in name:
                return rng.standard_normal(shape, np.float32) * scale
            out = np.empty(shape, np.float16)
            for part in range(shape[0] if len(shape) == 3 else 1):  # an expert at a time
                rows = out[part] if len(shape) == 3 else out
                rows[...] = rng.standard_normal(rows.shape, np.float32) * scale
            return out

        return make

    return _write_q4_k_m(target, metadata, shapes, values, threads)
