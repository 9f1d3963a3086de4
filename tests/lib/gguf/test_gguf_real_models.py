"""The reader on the two real GGUF models: known facts about their contents."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from ollamakit.testing import models
from ollamakit.headers import format_parameter_size
from ollamakit.lib.gguf import GGUFFile, looks_like_gguf

pytestmark = pytest.mark.real_model


def test_smollm2_facts():
    path = models.smollm2_q4_1()
    assert looks_like_gguf(path)
    with GGUFFile.open(path) as g:
        assert (g.version, g.alignment, g.architecture) == (3, 32, "llama")
        assert len(g.tensors) == 272
        assert Counter(t.type_name for t in g.tensors) == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
        assert g.metadata["llama.block_count"] == 30 and g.metadata["llama.embedding_length"] == 576
        assert len(g.metadata["tokenizer.ggml.tokens"]) == 49152 == g.metadata["llama.vocab_size"]
        assert g.metadata["tokenizer.ggml.tokens"][:3] == [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
        ]
        assert g.metadata["tokenizer.ggml.pre"] == "smollm"
        assert "<|im_start|>" in g.metadata["tokenizer.chat_template"]
        assert g.file_type_name == "Q4_1"
        assert (
            g.parameter_count == 134_515_008
            and format_parameter_size(g.parameter_count) == "134.52M"
        )
        embd = g.tensor_info("token_embd.weight")
        assert (embd.shape, embd.type_name) == ((576, 49152), "Q8_0")
        # Tied embeddings: no separate output matrix.
        with pytest.raises(KeyError):
            g.tensor_info("output.weight")
        norm = g.tensor("output_norm.weight")
        assert norm.shape == (576,) and np.isfinite(norm).all() and norm.std() > 0


def test_gemma3_facts_and_parse_speed():
    path = models.gemma3_270m()
    start = time.perf_counter()
    g = GGUFFile.open(path)
    elapsed = time.perf_counter() - start
    with g:
        assert elapsed < 3.0, f"parsing took {elapsed:.2f}s"  # typically 0.15-0.2s
        assert g.architecture == "gemma3" and len(g.tensors) == 236
        tokens = g.metadata["tokenizer.ggml.tokens"]
        assert len(tokens) == 262144 and tokens[:4] == ["<pad>", "<eos>", "<bos>", "<unk>"]
        assert len(g.metadata["tokenizer.ggml.scores"]) == 262144
        assert (
            g.metadata_types["tokenizer.ggml.scores"] == 6
            and g.metadata_types["tokenizer.ggml.token_type"] == 5
        )
        assert g.metadata["gemma3.attention.sliding_window"] == 512
        assert g.file_type_name == "Q4_K_M"
        assert {"Q4_K", "Q6_K", "Q5_0", "Q8_0", "F32"} == {t.type_name for t in g.tensors}
        assert g.tensor_info("token_embd.weight").shape == (640, 262144)
        assert format_parameter_size(g.parameter_count) == "268.10M"
        down = g.tensor("blk.0.ffn_down.weight")
        assert down.shape == (640, 2048) and np.isfinite(down).all()
