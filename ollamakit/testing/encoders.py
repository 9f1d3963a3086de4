"""Tiny random encoder models, for comparing the BERT engine with independent implementations.

``tiny_nomic_bert`` writes a ``nomic-bert`` GGUF (nomic-embed-text's architecture: fused qkv
without biases, rotary positions, SwiGLU, mean pooling) with a small WordPiece vocabulary.
``tiny_cross_encoder`` writes a ``BertForSequenceClassification`` safetensors folder (a
cross-encoder with one score) with all-MiniLM-L6-v2's tokenizer. Their weights come from a seeded
generator, so every machine writes the same files.

Recording the references (with packages ollamakit itself does not need)::

    python -m ollamakit.testing.encoders nomic-bert     # llama-cpp-python: ids and vectors
    python -m ollamakit.testing.encoders cross-encoder  # sentence-transformers' CrossEncoder scores

write ``tests/reference/llamacpp-nomic-bert.json`` (with the CPU noted) and
``tests/reference/cross-encoder-scores.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ollamakit.lib.gguf import ValueType

from .gguf_factory import make_gguf
from .reference import REFERENCE_DIR

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "a",
    "cat",
    "dog",
    "llama",
    "sat",
    "ran",
    "on",
    "in",
    "mat",
    "park",
    "grass",
    "eat",
    "##s",
    "##ing",
    "and",
    "is",
    "was",
    "red",
    "blue",
    "house",
    "fast",
    "slow",
    "river",
    "bridge",
    "old",
    "stone",
    "night",
    "rain",
    "fell",
    "over",
    ".",
    ",",
    "!",
    "?",
]

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

CROSS_SHAPE = {"d": 64, "heads": 4, "ff": 128, "layers": 2, "positions": 512, "std": 0.2}
CROSS_RECORD = "cross-encoder-scores.json"
QUERIES = (
    "what do llamas eat?",
    "How does a vector database find the nearest embeddings quickly?",
)
DOCUMENTS = (
    "Llamas are members of the camelid family and eat grass and hay.",
    "A vector database stores embeddings and finds the nearest ones quickly.",
    "The quick brown fox jumps over the lazy dog.",
    "Rain fell on the old stone bridge as the river rose through the night.",
    "Alpacas and llamas graze in the Andes.",
    "Approximate nearest neighbour search uses graphs such as HNSW.",
    "",
)


def wordpiece_metadata(words: list[str] = WORDS) -> dict:
    """A BERT (WordPiece) vocabulary in llama.cpp's spelling: ``▁word``, continuations bare."""
    control = [w.startswith("[") and w.endswith("]") for w in words]
    tokens = [
        w if c else (w[2:] if w.startswith("##") else "\u2581" + w) for w, c in zip(words, control)
    ]
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


WORDPIECE_TYPES = {
    "tokenizer.ggml.tokens": ValueType.STRING,
    "tokenizer.ggml.token_type": ValueType.INT32,
}


def _layer_norm(rng, d: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        (1 + 0.1 * rng.standard_normal(d)).astype(np.float32),
        (0.1 * rng.standard_normal(d)).astype(np.float32),
    )


def tiny_nomic_bert(path: str | Path, seed: int = 0) -> Path:
    """A random ``nomic-bert`` GGUF (F32) with the shape of ``NOMIC_SHAPE``."""
    s = NOMIC_SHAPE
    d, ff, ctx = s["d"], s["ff"], s["ctx"]
    rng = np.random.default_rng(seed)

    def linear(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    tensors = {
        "token_embd.weight": rng.standard_normal((len(WORDS), d)).astype(np.float32),
        "token_types.weight": rng.standard_normal((2, d)).astype(np.float32),
    }
    tensors["token_embd_norm.weight"], tensors["token_embd_norm.bias"] = _layer_norm(rng, d)
    for i in range(s["layers"]):
        b = f"blk.{i}."
        tensors[b + "attn_qkv.weight"] = linear(3 * d, d)
        tensors[b + "attn_output.weight"] = linear(d, d)
        tensors[b + "attn_output_norm.weight"], tensors[b + "attn_output_norm.bias"] = _layer_norm(
            rng, d
        )
        tensors[b + "ffn_up.weight"] = linear(ff, d)
        tensors[b + "ffn_gate.weight"] = linear(ff, d)
        tensors[b + "ffn_down.weight"] = linear(d, ff)
        tensors[b + "layer_output_norm.weight"], tensors[b + "layer_output_norm.bias"] = (
            _layer_norm(rng, d)
        )
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
    return make_gguf(
        path,
        metadata,
        tensors,
        types={
            **WORDPIECE_TYPES,
            f"{arch}.rope.freq_base": ValueType.FLOAT32,
            f"{arch}.attention.layer_norm_epsilon": ValueType.FLOAT32,
        },
    )


# ms-marco-MiniLM-L6-v2's shape, for the rerank benchmark
MINILM_CROSS_SHAPE = {"d": 384, "heads": 12, "ff": 1536, "layers": 6, "positions": 512, "std": 0.05}


def tiny_cross_encoder(folder: str | Path, seed: int = 0, shape: dict | None = None) -> Path:
    """A random ``BertForSequenceClassification`` (one label) with all-MiniLM-L6-v2's tokenizer,
    as a safetensors folder that transformers and sentence-transformers' ``CrossEncoder`` load
    (``CROSS_SHAPE`` unless ``shape`` is given)."""
    import shutil

    from safetensors.numpy import save_file

    from .models import all_minilm_l6_v2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = all_minilm_l6_v2()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copyfile(tokenizer / name, folder / name)
    vocab = len((tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    s = shape or CROSS_SHAPE
    d, ff = s["d"], s["ff"]
    rng = np.random.default_rng(seed)
    shapes = {
        "bert.embeddings.word_embeddings.weight": (vocab, d),
        "bert.embeddings.position_embeddings.weight": (s["positions"], d),
        "bert.embeddings.token_type_embeddings.weight": (2, d),
        "bert.embeddings.LayerNorm.weight": (d,),
        "bert.embeddings.LayerNorm.bias": (d,),
        "bert.pooler.dense.weight": (d, d),
        "bert.pooler.dense.bias": (d,),
        "classifier.weight": (1, d),
        "classifier.bias": (1,),
    }
    for i in range(s["layers"]):
        b = f"bert.encoder.layer.{i}."
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            shapes[b + part + ".weight"], shapes[b + part + ".bias"] = (d, d), (d,)
        shapes.update(
            {
                b + "intermediate.dense.weight": (ff, d),
                b + "intermediate.dense.bias": (ff,),
                b + "output.dense.weight": (d, ff),
                b + "output.dense.bias": (d,),
            }
        )
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[b + norm + ".weight"], shapes[b + norm + ".bias"] = (d,), (d,)
    weights = {}
    for name, shape in shapes.items():
        if "LayerNorm.weight" in name:
            weights[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif "embeddings" in name:
            weights[name] = rng.standard_normal(shape).astype(np.float32)
        else:  # larger than BERT's 0.02 initialiser, so that different pairs score differently
            weights[name] = (s["std"] * rng.standard_normal(shape)).astype(np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_size": d,
        "intermediate_size": ff,
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "max_position_embeddings": s["positions"],
        "type_vocab_size": 2,
        "vocab_size": vocab,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "pad_token_id": 0,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        "position_embedding_type": "absolute",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def llamacpp_embeddings(
    path: str | Path, texts, n_ctx: int = 128
) -> tuple[list[list[int]], list[list[float]]]:
    """llama.cpp's token ids and pooled (not normalised) vectors for ``texts``."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path),
        embedding=True,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=2,
        verbose=False,
    )
    ids = [llm.tokenize(t.encode(), add_bos=True, special=True) for t in texts]
    vectors = [llm.embed(t, normalize=False) for t in texts]
    llm.close()
    return ids, vectors


def record_cross_encoder() -> None:
    import platform
    import tempfile

    import sentence_transformers
    import torch
    from sentence_transformers import CrossEncoder

    with tempfile.TemporaryDirectory() as scratch:
        model = CrossEncoder(str(tiny_cross_encoder(Path(scratch) / "cross")), device="cpu")
        pairs = [(q, doc) for q in QUERIES for doc in DOCUMENTS]
        logits = model.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        default = model.predict(pairs, convert_to_numpy=True)
        # as CrossEncoder tokenizes a batch (a lone pair with an empty document would lose its [SEP])
        ids = model.tokenizer([q for q, _ in pairs], [doc for _, doc in pairs])["input_ids"]
    record = {
        "made_with": f"sentence-transformers {sentence_transformers.__version__} CrossEncoder, torch "
        f"{torch.__version__}, CPU ({platform.machine()})",
        "model": "ollamakit.testing.encoders.tiny_cross_encoder(seed=0)",
        "shape": CROSS_SHAPE,
        "queries": list(QUERIES),
        "documents": list(DOCUMENTS),
        "ids": ids,
        "logits": [
            [round(float(x), 7) for x in logits[i * len(DOCUMENTS) : (i + 1) * len(DOCUMENTS)]]
            for i in range(len(QUERIES))
        ],
        "default_scores": [
            [round(float(x), 7) for x in default[i * len(DOCUMENTS) : (i + 1) * len(DOCUMENTS)]]
            for i in range(len(QUERIES))
        ],
    }
    out = REFERENCE_DIR / CROSS_RECORD
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    import sys

    if sys.argv[1:] == ["cross-encoder"]:
        record_cross_encoder()
    elif sys.argv[1:] == ["nomic-bert"]:
        record_nomic_bert()
    else:
        sys.exit("usage: python -m ollamakit.testing.encoders nomic-bert|cross-encoder")


def record_nomic_bert() -> None:
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
