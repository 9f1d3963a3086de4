"""Tiny random decoder models written as GGUF, and a plain float64 reference forward pass.

The reference is deliberately naive and independent of the engine's tricks: it uses the file's
tensors as written (llama's interleaved rope on unpermuted q/k rows, separate q/k/v and gate/up
matrices), no cache, and the full causal (and sliding-window) mask over the whole sequence.
"""

from __future__ import annotations

import math

import numpy as np

from ollamakit.testing.gguf_factory import make_gguf
from ollamakit_engine import build_runner
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit_numpy import NumpyBackend

VOCAB = 97


def _weights(rng, rows, cols):
    return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)


def _norm(rng, width):
    return (1.0 + 0.3 * rng.standard_normal(width)).astype(np.float32)


def load(path, backend=None, **options):
    """A runner for the model file at ``path`` (on the numpy backend unless ``backend`` is given)."""
    with GGUFFile.open(path) as gguf:
        return build_runner(gguf, backend or NumpyBackend(), options)


def write_model(
    path,
    arch: str,
    *,
    n_layers=2,
    n_embd=64,
    n_heads=4,
    n_kv_heads=2,
    n_ff=96,
    head_dim=None,
    window=None,
    softcap=None,
    biases=False,
    seed=0,
):
    rng = np.random.default_rng(seed)
    head_dim = head_dim or n_embd // n_heads
    meta = {
        "general.architecture": arch,
        f"{arch}.block_count": n_layers,
        f"{arch}.context_length": 512,
        f"{arch}.embedding_length": n_embd,
        f"{arch}.feed_forward_length": n_ff,
        f"{arch}.attention.head_count": n_heads,
        f"{arch}.attention.head_count_kv": n_kv_heads,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{arch}.rope.freq_base": 10000.0 if arch != "gemma3" else 1000000.0,
        f"{arch}.attention.key_length": head_dim,
        f"{arch}.attention.value_length": head_dim,
    }
    if window:
        meta[f"{arch}.attention.sliding_window"] = window
    if softcap:
        meta[f"{arch}.final_logit_softcapping"] = softcap
    q_dim, kv_dim = n_heads * head_dim, n_kv_heads * head_dim
    tensors = {
        "token_embd.weight": _weights(rng, VOCAB, n_embd),
        "output_norm.weight": _norm(rng, n_embd),
    }
    if arch != "gemma3":
        tensors["output.weight"] = _weights(rng, VOCAB, n_embd)
    for i in range(n_layers):
        p = f"blk.{i}."
        tensors.update(
            {
                p + "attn_norm.weight": _norm(rng, n_embd),
                p + "attn_q.weight": _weights(rng, q_dim, n_embd),
                p + "attn_k.weight": _weights(rng, kv_dim, n_embd),
                p + "attn_v.weight": _weights(rng, kv_dim, n_embd),
                p + "attn_output.weight": _weights(rng, n_embd, q_dim),
                p + "ffn_norm.weight": _norm(rng, n_embd),
                p + "ffn_gate.weight": _weights(rng, n_ff, n_embd),
                p + "ffn_up.weight": _weights(rng, n_ff, n_embd),
                p + "ffn_down.weight": _weights(rng, n_embd, n_ff),
            }
        )
        if biases:
            for x, width in (("q", q_dim), ("k", kv_dim), ("v", kv_dim)):
                tensors[p + f"attn_{x}.bias"] = (0.1 * rng.standard_normal(width)).astype(
                    np.float32
                )
        if arch == "gemma3":
            tensors.update(
                {
                    p + "attn_q_norm.weight": _norm(rng, head_dim),
                    p + "attn_k_norm.weight": _norm(rng, head_dim),
                    p + "post_attention_norm.weight": _norm(rng, n_embd),
                    p + "post_ffw_norm.weight": _norm(rng, n_embd),
                }
            )
    make_gguf(path, meta, tensors)
    return meta, tensors


# -- the reference ------------------------------------------------------------------------------


def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, positions, base, interleaved):
    """x (tokens, heads, dim) rotated; interleaved pairs (2i, 2i+1) or halves (i, i + dim/2)."""
    dim = x.shape[-1]
    theta = positions[:, None] * base ** (-np.arange(0, dim, 2) / dim)  # (tokens, dim/2)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., : dim // 2], x[..., dim // 2 :]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = np.empty_like(x)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., : dim // 2], out[..., dim // 2 :] = ra, rb
    return out


def reference_logits(meta, tensors, tokens) -> np.ndarray:
    """Logits (tokens, vocab) of every position, in float64."""
    arch = meta["general.architecture"]
    t = {k: np.asarray(v, np.float64) for k, v in tensors.items()}
    n_heads, n_kv = meta[f"{arch}.attention.head_count"], meta[f"{arch}.attention.head_count_kv"]
    head_dim = meta[f"{arch}.attention.key_length"]
    eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
    gemma = arch == "gemma3"
    window = meta.get(f"{arch}.attention.sliding_window")
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    x = t["token_embd.weight"][tokens]
    if gemma:
        x = x * math.sqrt(x.shape[1])
    causal = pos[None, :] <= pos[:, None]
    for i in range(meta[f"{arch}.block_count"]):
        p = f"blk.{i}."
        local = gemma and i % 6 < 5
        h = _rms(x, t[p + "attn_norm.weight"], eps)
        q, k, v = (h @ t[p + f"attn_{z}.weight"].T for z in "qkv")
        if p + "attn_q.bias" in t:
            q, k, v = q + t[p + "attn_q.bias"], k + t[p + "attn_k.bias"], v + t[p + "attn_v.bias"]
        q, k, v = (
            q.reshape(n, n_heads, head_dim),
            k.reshape(n, n_kv, head_dim),
            v.reshape(n, n_kv, head_dim),
        )
        if gemma:
            q, k = (
                _rms(q, t[p + "attn_q_norm.weight"], eps),
                _rms(k, t[p + "attn_k_norm.weight"], eps),
            )
        base = 10000.0 if local else meta[f"{arch}.rope.freq_base"]
        q, k = _rope(q, pos, base, arch == "llama"), _rope(k, pos, base, arch == "llama")
        visible = causal & ((pos[:, None] - pos[None, :] < window) if local else True)
        out = np.empty((n, n_heads, head_dim))
        for head in range(n_heads):
            kv = head // (n_heads // n_kv)
            scores = q[:, head] @ k[:, kv].T / math.sqrt(head_dim)
            scores = np.where(visible, scores, -np.inf)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            out[:, head] = probs @ v[:, kv]
        attn = out.reshape(n, -1) @ t[p + "attn_output.weight"].T
        if gemma:
            attn = _rms(attn, t[p + "post_attention_norm.weight"], eps)
        x = x + attn
        h = _rms(x, t[p + "ffn_norm.weight"], eps)
        gate, up = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
        if gemma:
            act = 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi) * (gate + 0.044715 * gate**3)))
        else:
            act = gate / (1 + np.exp(-gate))
        down = (act * up) @ t[p + "ffn_down.weight"].T
        if gemma:
            down = _rms(down, t[p + "post_ffw_norm.weight"], eps)
        x = x + down
    x = _rms(x, t["output_norm.weight"], eps)
    logits = x @ t.get("output.weight", t["token_embd.weight"]).T
    cap = meta.get(f"{arch}.final_logit_softcapping")
    if cap:
        logits = cap * np.tanh(logits / cap)
    return logits
