"""Tiny random encoder models in GGUF, for comparing the BERT engine with llama.cpp.

``tiny_nomic_bert`` writes a ``nomic-bert`` model (nomic-embed-text's architecture: fused qkv
without biases, rotary positions, SwiGLU, mean pooling) with a small WordPiece vocabulary. Its
weights come from a seeded generator, so every machine writes the same file.

``python -m ollamakit.testing.encoders`` records llama.cpp's token ids and vectors for it (through
llama-cpp-python, which ollamakit itself does not need) into
``tests/reference/llamacpp-nomic-bert.json``, with the CPU noted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ollamakit.lib.gguf import ValueType

from .gguf_factory import make_gguf
from .reference import REFERENCE_DIR

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "llama", "sat", "ran", "on", "in",
         "mat", "park", "grass", "eat", "##s", "##ing", "and", "is", "was", "red", "blue", "house", "fast", "slow",
         "river", "bridge", "old", "stone", "night", "rain", "fell", "over", ".", ",", "!", "?"]

TEXTS = (
    "the cat sat on the mat.",
    "a llama eats grass in the park!",
    "the old stone bridge, the river and the rain.",
    "dogs ran fast",
    "is the red house blue? the night was slow, the rain fell over the old bridge and the cats sat in the "
    "park eating grass.",
    "rain",
)

NOMIC_SHAPE = {"d": 64, "heads": 4, "ff": 96, "layers": 2, "ctx": 128, "rope_base": 1000.0}
NOMIC_RECORD = "llamacpp-nomic-bert.json"


def wordpiece_metadata(words: list[str] = WORDS) -> dict:
    """A BERT (WordPiece) vocabulary in llama.cpp's spelling: ``▁word``, continuations bare."""
    control = [w.startswith("[") and w.endswith("]") for w in words]
    tokens = [w if c else (w[2:] if w.startswith("##") else "\u2581" + w) for w, c in zip(words, control)]
    index = {w: i for i, w in enumerate(words)}
    return {
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3 if c else 1 for c in control],
        "tokenizer.ggml.token_type_count": 2,
        "tokenizer.ggml.bos_token_id": index["[CLS]"],
        "tokenizer.ggml.seperator_token_id": index["[SEP]"],
        "tokenizer.ggml.unknown_token_id": index["[UNK]"],
        "tokenizer.ggml.padding_token_id": index["[PAD]"],
        "tokenizer.ggml.mask_token_id": index["[MASK]"],
    }


WORDPIECE_TYPES = {"tokenizer.ggml.tokens": ValueType.STRING, "tokenizer.ggml.token_type": ValueType.INT32}


def _layer_norm(rng, d: int) -> tuple[np.ndarray, np.ndarray]:
    return ((1 + 0.1 * rng.standard_normal(d)).astype(np.float32),
            (0.1 * rng.standard_normal(d)).astype(np.float32))


def tiny_nomic_bert(path: str | Path, seed: int = 0) -> Path:
    """A random ``nomic-bert`` GGUF (F32) with the shape of ``NOMIC_SHAPE``."""
    s = NOMIC_SHAPE
    d, ff, ctx = s["d"], s["ff"], s["ctx"]
    rng = np.random.default_rng(seed)

    def linear(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    tensors = {"token_embd.weight": rng.standard_normal((len(WORDS), d)).astype(np.float32),
               "token_types.weight": rng.standard_normal((2, d)).astype(np.float32)}
    tensors["token_embd_norm.weight"], tensors["token_embd_norm.bias"] = _layer_norm(rng, d)
    for i in range(s["layers"]):
        b = f"blk.{i}."
        tensors[b + "attn_qkv.weight"] = linear(3 * d, d)
        tensors[b + "attn_output.weight"] = linear(d, d)
        tensors[b + "attn_output_norm.weight"], tensors[b + "attn_output_norm.bias"] = _layer_norm(rng, d)
        tensors[b + "ffn_up.weight"] = linear(ff, d)
        tensors[b + "ffn_gate.weight"] = linear(ff, d)
        tensors[b + "ffn_down.weight"] = linear(d, ff)
        tensors[b + "layer_output_norm.weight"], tensors[b + "layer_output_norm.bias"] = _layer_norm(rng, d)
    arch = "nomic-bert"
    metadata = {
        "general.architecture": arch,
        "general.name": "tiny nomic-bert",
        f"{arch}.context_length": ctx,
        f"{arch}.embedding_length": d,
        f"{arch}.feed_forward_length": ff,
        f"{arch}.block_count": s["layers"],
        f"{arch}.attention.head_count": s["heads"],
        f"{arch}.attention.layer_norm_epsilon": 1e-12,
        f"{arch}.attention.causal": False,
        f"{arch}.rope.freq_base": s["rope_base"],
        f"{arch}.pooling_type": 1,
        **wordpiece_metadata(),
    }
    return make_gguf(path, metadata, tensors, types={**WORDPIECE_TYPES, f"{arch}.rope.freq_base": ValueType.FLOAT32,
                                                     f"{arch}.attention.layer_norm_epsilon": ValueType.FLOAT32})


def llamacpp_embeddings(path: str | Path, texts, n_ctx: int = 128) -> tuple[list[list[int]], list[list[float]]]:
    """llama.cpp's token ids and pooled (not normalised) vectors for ``texts``."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                          n_threads=2, verbose=False)
    ids = [llm.tokenize(t.encode(), add_bos=True, special=True) for t in texts]
    vectors = [llm.embed(t, normalize=False) for t in texts]
    llm.close()
    return ids, vectors


def main() -> None:
    import tempfile

    import llama_cpp

    from .agreement import cpu

    with tempfile.TemporaryDirectory() as scratch:
        path = tiny_nomic_bert(Path(scratch) / "nomic.gguf")
        ids, vectors = llamacpp_embeddings(path, TEXTS)
    record = {
        "made_with": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp), CPU, 2 threads, n_ctx 128",
        "cpu": cpu(),
        "model": "ollamakit.testing.encoders.tiny_nomic_bert(seed=0)",
        "shape": NOMIC_SHAPE,
        "pooling": "mean",
        "texts": list(TEXTS),
        "ids": ids,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }
    out = REFERENCE_DIR / NOMIC_RECORD
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
