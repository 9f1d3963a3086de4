"""Pre-tokenizer splits, llama.cpp's character classes, and streaming decode."""

from __future__ import annotations

import pytest

from ollamakit.lib.tokenizers import PRE_TOKENIZERS, load_tokenizer
from ollamakit.lib.tokenizers import unicode
from ollamakit.lib.tokenizers.pretokenizers import PreTokenizer
from test_tokenizer_tiny import spm_metadata


def split(name, text):
    return PreTokenizer(PRE_TOKENIZERS[name].patterns).split(text)


def test_gpt2_split():
    assert split("gpt-2", "Hello world's 42  end\n") == [
        "Hello",
        " world",
        "'s",
        " 42",
        " ",
        " end",
        "\n",
    ]


def test_llama3_split_groups_digits_and_newlines():
    assert split("llama-bpe", "x 1234567\n\n  y") == [
        "x",
        " ",
        "123",
        "456",
        "7",
        "\n\n",
        " ",
        " y",
    ]
    assert split("llama-bpe", "I'M") == ["I", "'M"]


def test_smollm_split_isolates_digits():
    assert split("smollm", "v1.25") == ["v", "1", ".", "2", "5"]


def test_every_piece_is_kept():
    text = "中文 😀\u00a0x\u3000y \t\n z\u0301!"
    for name, spec in PRE_TOKENIZERS.items():
        assert "".join(PreTokenizer(spec.patterns).split(text)) == text, name


def test_character_classes_follow_llamacpp():
    assert unicode.collapse("aé1١ \u00a0\u3000!😀\u0301") == "a\xd21\xd1 \x0b\x0b!\xd5\xd4"
    assert unicode.major_category(0x31350) == "L"  # assigned in Unicode 15.0
    assert unicode.major_category(0x10FFFD) == "C"  # private use
    assert unicode.major_category(0x50000) == "U"  # unassigned
    assert unicode.to_lower("İ") == "i" and unicode.nfd_base("é") == "e"


@pytest.fixture
def byte_tokenizer():
    return load_tokenizer(spm_metadata([("▁", -1.0)], **{"tokenizer.ggml.add_space_prefix": False}))


def test_stream_decoder_holds_incomplete_characters(byte_tokenizer):
    ids = byte_tokenizer.encode("é😀a", add_special=False)
    assert len(ids) == 2 + 4 + 1
    stream = byte_tokenizer.stream_decoder()
    out = [stream.feed(i) for i in ids]
    assert out == ["", "é", "", "", "", "😀", "a"]
    assert stream.flush() == "" and not stream.pending


def test_stream_decoder_flushes_a_broken_character(byte_tokenizer):
    ids = byte_tokenizer.encode("😀", add_special=False)
    stream = byte_tokenizer.stream_decoder()
    assert [stream.feed(i) for i in ids[:2]] == ["", ""]
    assert stream.pending
    assert stream.flush() == "\ufffd"
    assert byte_tokenizer.decode(ids[:2]) == "\ufffd"


def test_special_tokens_stream_as_text_only_when_asked(byte_tokenizer):
    assert byte_tokenizer.stream_decoder().feed(2) == ""
    assert byte_tokenizer.stream_decoder(special=True).feed(2) == "</s>"


def test_heap_merge_agrees_with_the_list_scan():
    import random

    from ollamakit.lib.tokenizers.bpe import BytePairEncoder
    from ollamakit.lib.tokenizers.merging import merge_by_priority
    from test_tokenizer_tiny import bpe_metadata

    rnd = random.Random(3)
    merges = sorted(
        {f"{a} {b}" for a in "abc" for b in "abc"} | {"ab c", "a bc", "ab ab", "ca b", "abc a"},
        key=lambda _: rnd.random(),
    )
    encoder: BytePairEncoder = load_tokenizer(bpe_metadata(merges))._encoder
    for _ in range(300):
        word = "".join(rnd.choice("abc") for _ in range(rnd.randint(2, 40)))
        assert encoder._merge(word) == merge_by_priority(
            list(word), lambda left, right: encoder._ranks.get((left, right))
        )


def test_long_words_stay_fast():
    import time

    tok = load_tokenizer(
        spm_metadata(
            [("a", -1.0), ("aa", -0.5), ("aaaa", -0.2)],
            **{"tokenizer.ggml.add_space_prefix": False},
        )
    )
    start = time.perf_counter()
    ids = tok.encode("a" * 20000, add_special=False)
    assert time.perf_counter() - start < 2.0  # quadratic merging took tens of seconds
    assert len(ids) == 5000
