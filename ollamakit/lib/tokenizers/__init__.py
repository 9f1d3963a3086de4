"""Tokenizers built from GGUF metadata that give exactly llama.cpp's token ids.

    from ollamakit.lib.tokenizers import load_tokenizer
    tok = load_tokenizer(gguf.metadata)
    ids = tok.encode("Hello", add_special=True, parse_special=True)
    text = tok.decode(ids)

Supported ``tokenizer.ggml.model`` values: "gpt2" (byte-level BPE, with the pre-tokenizer that
``tokenizer.ggml.pre`` names), "llama" (SentencePiece) and "bert" (WordPiece).
"""

from .pretokenizers import PRE_TOKENIZERS
from .tokenizer import SUPPORTED_MODELS, StreamDecoder, Tokenizer, load_tokenizer

__all__ = ["PRE_TOKENIZERS", "SUPPORTED_MODELS", "StreamDecoder", "Tokenizer", "load_tokenizer"]
