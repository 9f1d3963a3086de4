"""Real vocabularies through tokenizer.json: Gemma 3's SentencePiece vocabulary (262k pieces) and
SmolLM2's byte-level BPE, written as Hugging Face tokenizer files, converted back to GGUF
metadata, must tokenize exactly as llama.cpp does with the original GGUF files."""

from __future__ import annotations

import json

import pytest
from hf_export import SMOLLM_PRE_TOKENIZER
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit_safetensors import ModelFolder
from ollamakit_safetensors.tokenizer_json import tokenizer_metadata
from ollamakit.lib.tokenizers import load_tokenizer

from ollamakit.testing import models
from ollamakit.testing.reference import reference_answers

pytestmark = pytest.mark.real_model


def reference_cases(model_file: str):
    return reference_answers("llamacpp-greedy.json")["models"][model_file]["tokenize"]


def converted_tokenizer(tmp_path, tokenizer: dict, settings: dict, config: dict):
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    files = {
        "tokenizer.json": tmp_path / "tokenizer.json",
        "tokenizer_config.json": tmp_path / "tokenizer_config.json",
    }
    with ModelFolder(files) as folder:
        values = tokenizer_metadata(folder, config)
    return load_tokenizer({key: value for key, (value, _) in values.items()}), values


def test_gemma3_sentencepiece_vocabulary(tmp_path):
    with GGUFFile.open(models.gemma3_270m()) as gguf:
        meta = dict(gguf.metadata)
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    added = [
        {"id": i, "content": t, "special": types[i] == 3}
        for i, t in enumerate(tokens)
        if types[i] in (3, 4)
    ]
    tokenizer = {
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"String": " "},
            "behavior": "MergedWithPrevious",
        },
        "model": {
            "type": "BPE",
            "byte_fallback": True,
            "unk_token": "<unk>",
            "merges": [],
            "vocab": {t: i for i, t in enumerate(tokens) if types[i] not in (3, 4)},
        },
    }
    settings = {
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
    }
    tok, values = converted_tokenizer(tmp_path, tokenizer, settings, {"vocab_size": len(tokens)})
    assert values["tokenizer.ggml.token_type"][0] == types
    for key in (
        "bos_token_id",
        "eos_token_id",
        "unknown_token_id",
        "padding_token_id",
        "add_space_prefix",
    ):
        assert values[f"tokenizer.ggml.{key}"][0] == meta[f"tokenizer.ggml.{key}"], key
    for case in reference_cases("gemma-3-270m-q4_k_m.gguf"):
        assert (
            tok.encode(case["text"], add_special=True, parse_special=True)
            == case["with_bos_special"]
        ), case["text"]
        assert tok.encode(case["text"], add_special=False, parse_special=False) == case["plain"], (
            case["text"]
        )


def test_smollm2_byte_level_vocabulary(tmp_path):
    with GGUFFile.open(models.smollm2_q4_1()) as gguf:
        meta = dict(gguf.metadata)
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    tokenizer = {
        "added_tokens": [
            {"id": i, "content": t, "special": True} for i, t in enumerate(tokens) if types[i] == 3
        ],
        "pre_tokenizer": SMOLLM_PRE_TOKENIZER,
        "decoder": {"type": "ByteLevel"},
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in meta["tokenizer.ggml.merges"]],
        },
    }
    settings = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "clean_up_tokenization_spaces": False,
    }
    tok, values = converted_tokenizer(tmp_path, tokenizer, settings, {"vocab_size": len(tokens)})
    assert values["tokenizer.ggml.pre"][0] == "smollm"
    assert values["tokenizer.ggml.merges"][0] == meta["tokenizer.ggml.merges"]
    for case in reference_cases("SmolLM2-135M-Instruct.Q4_1.gguf"):
        assert (
            tok.encode(case["text"], add_special=True, parse_special=True)
            == case["with_bos_special"]
        ), case["text"]
        assert tok.encode(case["text"], add_special=False, parse_special=False) == case["plain"], (
            case["text"]
        )
