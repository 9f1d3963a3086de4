"""Texts and metadata shared by the tokenizer tests and by ``make_fixture.py``."""

from __future__ import annotations

import json
import random
from pathlib import Path

HARD_TEXTS = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "\t",
    " \t \n ",
    "a",
    "Hello world",
    " Hello  World\n\nBye",
    "The year 1999 was 25% cheaper: $3.50!",
    "12345678901234567890",
    "3.14159 2,718 1e-10 0x1F 007",
    "don't won't can't y'all I'M HE'S they'RE we'Ve",
    "café résumé naïve Ångström",
    "中文字符测试，这是一个句子。",
    "日本語のテキストです。カタカナ",
    "한국어 텍스트입니다",
    "😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸",
    "e\u0301 a\u0308 o\u0303 combining",
    "مرحبا بالعالم",
    "שלום עולם",
    "Привет мир",
    "Γειά σου κόσμε",
    "def foo(x):\n    return x**2  # comment\n\tpass",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n",
    "<|im_start|>",
    "<|im_",
    "<|im_end",
    "im_start|>",
    "<|im_start|><|im_end|>",
    "<<|im_start|>>",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad><unk>",
    "<table><tr><td>x</td></tr></table>",
    "</s> <s> </s>",
    "[CLS] [SEP] [MASK]x",
    "<|endoftext|>",
    "<reponame>x<file_sep>y",
    "    indented code()\n\tand tabs",
    "a  b   c    d     e",
    "\r\n\r\nwindows\r\n",
    "\u00a0nbsp\u2003em\u3000ideographic\u2028ls\u0085nel",
    "\x00\x01\x1f\x7f controls",
    "https://example.com/path?q=1&r=2#frag",
    "!!!???...,,,",
    "—–-‐ “quotes” ‘single’ «guillemets»",
    "½ ¼ ² ³ ⅓ Ⅻ ①",
    "∑∫√∞≠≤≥ ±×÷",
    "ﬁ ﬂ ligatures",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\U00031350\U0002ebf0 new cjk",
    "a" * 200,
    " " * 40 + "x",
    "\n" * 30,
    "\t" * 30 + "x",
    "1" * 40,
    "İstanbul ıi straße",
    "\u200b\u200c\u200d zero width",
    "JSONParser XMLHttpRequest snake_case",
    "ไทย ภาษา",
    "हिन्दी भाषा",
    "𓀀𓀁",
    "▁ Ġ <0x41>",
    "   leading",
    "trailing   ",
]

_BLOCKS = [
    (0x20, 0x7F),
    (0xA0, 0x250),
    (0x370, 0x500),
    (0x590, 0x700),
    (0x900, 0x980),
    (0x3040, 0x3100),
    (0x4E00, 0x4F00),
    (0xAC00, 0xAC80),
    (0x1F300, 0x1F650),
    (0x2000, 0x2070),
    (0x0, 0x20),
    (0x1D400, 0x1D500),
    (0xE000, 0xE010),
    (0x31340, 0x31360),
    (0x11F00, 0x11F5A),
]
_PIECES = [
    "<|im_start|>",
    "<|im_end|>",
    "<end_of_turn>",
    "<bos>",
    "</s>",
    "  ",
    "\n\n",
    "\t\t",
    "<td>",
    "'s",
    "123",
    "[CLS]",
    "<|endoftext|>",
]


def random_texts(rnd: random.Random, count: int) -> list[str]:
    """Short strings mixing ASCII, many scripts, controls, unassigned code points and specials."""
    texts = []
    for _ in range(count):
        chars = []
        for _ in range(rnd.randint(1, 30)):
            roll = rnd.random()
            if roll < 0.5:
                chars.append(
                    rnd.choice("abcdefghijklmnopqrstuvwxyz ABCXYZ  0123456789.,;:!?'\"()-_\n\t")
                )
            elif roll < 0.9:
                chars.append(chr(rnd.randrange(*rnd.choice(_BLOCKS))))
            else:
                chars.append(rnd.choice(_PIECES))
        texts.append("".join(chars))
    return texts


def smollm_with_digit_tokens(metadata: dict) -> dict:
    """SmolLM2's tokenizer plus tokens and merges for every 2- and 3-digit string."""
    tokens = list(metadata["tokenizer.ggml.tokens"])
    types = list(metadata["tokenizer.ggml.token_type"])
    merges = list(metadata["tokenizer.ggml.merges"])
    digits = "0123456789"
    for left, right in [(a, b) for a in digits for b in digits] + [
        (a + b, c) for a in digits for b in digits for c in digits
    ]:
        tokens.append(left + right)
        types.append(1)
        merges.append(f"{left} {right}")
    return {
        **metadata,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "llama.vocab_size": len(tokens),
    }


def minilm_metadata(folder: Path) -> dict:
    """GGUF-style tokenizer metadata for all-MiniLM-L6-v2: WordPiece spelled with a phantom space,
    as the GGUF converter writes BERT vocabularies."""
    vocab = (Path(folder) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    added = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))[
        "added_tokens"
    ]
    specials = {t["content"] for t in added}

    def spelled(token: str) -> str:
        if token.startswith("[") and token.endswith("]"):
            return token
        return token[2:] if token.startswith("##") else "\u2581" + token

    return {
        "general.name": "all-MiniLM-L6-v2",
        "general.architecture": "bert",
        "bert.context_length": 512,
        "bert.embedding_length": 384,
        "bert.feed_forward_length": 1536,
        "bert.block_count": 6,
        "bert.attention.head_count": 12,
        "bert.attention.layer_norm_epsilon": 1e-12,
        "bert.attention.causal": False,
        "bert.pooling_type": 1,
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.token_type_count": 2,
        "tokenizer.ggml.tokens": [spelled(t) for t in vocab],
        "tokenizer.ggml.token_type": [3 if t in specials else 1 for t in vocab],
        "tokenizer.ggml.unknown_token_id": 100,
        "tokenizer.ggml.seperator_token_id": 102,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.mask_token_id": 103,
    }
