"""Tokenizer logic on hand-made vocabularies: no model files needed."""

from __future__ import annotations

import pytest

from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.lib.tokenizers import load_tokenizer
from ollamakit.lib.tokenizers.bpe import BYTE_TO_CHAR

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


def bpe_metadata(merges, extra_tokens=(), pre="gpt-2", **more):
    specials = [("<|end|>", CONTROL), ("<|tool|>", USER_DEFINED)]
    tokens = [t for t, _ in specials] + list(BYTE_TO_CHAR)
    types = [k for _, k in specials] + [NORMAL] * 256
    for merge in merges:
        left, right = merge.split(" ")
        if left + right not in tokens:
            tokens.append(left + right)
            types.append(NORMAL)
    for token in extra_tokens:
        tokens.append(token)
        types.append(NORMAL)
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": list(merges),
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 0,
        **more,
    }


def pieces(tok, ids):
    return [tok.token_text(i) for i in ids]


class TestBytePairEncoding:
    def test_merges_follow_rank(self):
        tok = load_tokenizer(bpe_metadata(["b c", "a b"]))
        assert pieces(tok, tok.encode("abc")) == ["a", "bc"]
        tok = load_tokenizer(bpe_metadata(["a b", "b c"]))
        assert pieces(tok, tok.encode("abc")) == ["ab", "c"]

    def test_words_and_spaces(self):
        merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"]
        tok = load_tokenizer(bpe_metadata(merges))
        assert pieces(tok, tok.encode("hello world")) == ["hello", "Ġworld"]
        # two spaces: the first stays alone (\s+(?!\S)), the second joins the word
        assert pieces(tok, tok.encode("hello  world")) == ["hello", "Ġ", "Ġworld"]
        assert tok.encode("") == []

    def test_non_ascii_is_byte_level(self):
        tok = load_tokenizer(bpe_metadata([]))
        ids = tok.encode("é😀")
        assert len(ids) == 2 + 4  # one token per UTF-8 byte
        assert tok.decode(ids) == "é😀"
        assert tok.token_to_piece(ids[0]) == b"\xc3"

    def test_digit_grouping_depends_on_the_pre_tokenizer(self):
        merges = ["1 2", "12 3", "4 5"]
        llama3 = load_tokenizer(bpe_metadata(merges, pre="llama-bpe"))
        assert pieces(llama3, llama3.encode("12345", add_special=False)) == ["123", "45"]
        smollm = load_tokenizer(bpe_metadata(merges, pre="smollm"))
        assert pieces(smollm, smollm.encode("12345")) == ["1", "2", "3", "4", "5"]
        qwen2 = load_tokenizer(bpe_metadata(merges, pre="qwen2"))
        assert pieces(qwen2, qwen2.encode("12345")) == ["1", "2", "3", "4", "5"]

    def test_llama3_takes_whole_words_that_are_tokens(self):
        # "abc" is a token, but no merge leads to it: llama3 (ignore_merges) still uses it
        llama3 = load_tokenizer(bpe_metadata([], extra_tokens=["abc"], pre="llama-bpe"))
        assert pieces(llama3, llama3.encode("abc", add_special=False)) == ["abc"]
        gpt2 = load_tokenizer(bpe_metadata([], extra_tokens=["abc"]))
        assert pieces(gpt2, gpt2.encode("abc")) == ["a", "b", "c"]

    def test_llama3_family_adds_bos_unless_the_file_says_otherwise(self):
        assert load_tokenizer(bpe_metadata([], pre="llama-bpe")).encode("a")[0] == 0
        off = load_tokenizer(
            bpe_metadata([], pre="llama-bpe", **{"tokenizer.ggml.add_bos_token": False})
        )
        assert off.encode("a") == [off.token_id("a")]

    def test_special_tokens(self):
        tok = load_tokenizer(bpe_metadata([]))
        assert tok.encode("x<|end|>y") == [tok.token_id("x"), 0, tok.token_id("y")]
        plain = tok.encode("x<|end|>y", parse_special=False)
        assert 0 not in plain and len(plain) == 9
        # user-defined tokens are split out even when specials are plain text
        assert tok.encode("<|tool|>", parse_special=False) == [1]
        assert tok.encode("<|en", parse_special=True) == [tok.token_id(c) for c in "<|en"]
        assert tok.token_to_piece(0) == b"" and tok.token_to_piece(0, special=True) == b"<|end|>"
        assert tok.token_to_piece(1) == b"<|tool|>"
        assert tok.is_control(0) and not tok.is_control(1)
        assert 0 in tok.eog_ids

    def test_end_of_generation_inferred_from_token_text(self):
        tok = load_tokenizer(bpe_metadata([], extra_tokens=["<|im_end|>", "<|eot_id|>"]))
        assert {tok.token_id("<|im_end|>"), tok.token_id("<|eot_id|>"), 0} <= tok.eog_ids
        assert tok.is_control(tok.token_id("<|im_end|>"))  # promoted, as llama.cpp does


def spm_metadata(pieces_scores, **more):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    for piece, score in pieces_scores:
        tokens.append(piece)
        types.append(NORMAL)
        scores.append(score)
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        **more,
    }


class TestSentencePiece:
    VOCAB = [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("c", -2.0),
        ("ab", -1.5),
        ("bc", -1.0),
        ("▁a", -0.5),
        ("h", -3.0),
        ("i", -3.0),
        ("hi", -0.1),
        ("▁hi", -0.2),
    ]

    def test_highest_score_merges_first(self):
        tok = load_tokenizer(spm_metadata(self.VOCAB, **{"tokenizer.ggml.add_space_prefix": False}))
        assert pieces(tok, tok.encode("abc", add_special=False)) == ["a", "bc"]
        flipped = [(p, -0.1 if p == "ab" else s) for p, s in self.VOCAB]
        tok = load_tokenizer(spm_metadata(flipped, **{"tokenizer.ggml.add_space_prefix": False}))
        assert pieces(tok, tok.encode("abc", add_special=False)) == ["ab", "c"]

    def test_space_prefix_bos_and_byte_fallback(self):
        tok = load_tokenizer(
            spm_metadata(self.VOCAB)
        )  # SentencePiece defaults: BOS and a space prefix
        ids = tok.encode("hi é")
        assert pieces(tok, ids) == ["<s>", "▁hi", "▁", "<0xC3>", "<0xA9>"]
        assert tok.decode(ids) == " hi é"
        # text after a special token gets the space prefix again
        assert pieces(tok, tok.encode("hi</s>hi", add_special=False)) == ["▁hi", "</s>", "▁hi"]
        assert pieces(tok, tok.encode("hi</s>hi", add_special=False, parse_special=False))[:2] == [
            "▁hi",
            "<0x3C>",
        ]

    def test_pieces_decode_spaces_and_bytes(self):
        tok = load_tokenizer(spm_metadata(self.VOCAB))
        assert tok.token_to_piece(tok.token_id("▁hi")) == b" hi"
        assert tok.token_to_piece(tok.token_id("<0xC3>")) == b"\xc3"
        assert tok.token_to_piece(0) == b"" and tok.token_to_piece(0, special=True) == b"<unk>"


def wordpiece_metadata(tokens, **more):
    return {
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [CONTROL if t.startswith("[") else NORMAL for t in tokens],
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.seperator_token_id": 3,
        "tokenizer.ggml.unknown_token_id": 1,
        **more,
    }


class TestWordPiece:
    GGUF_SPELLING = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "▁hello",
        "▁world",
        "▁,",
        "▁!",
        "▁un",
        "aff",
        "able",
        "▁中",
        "▁cafe",
    ]

    def test_words_punctuation_and_continuations(self):
        tok = load_tokenizer(wordpiece_metadata(self.GGUF_SPELLING))
        assert pieces(tok, tok.encode("Hello, WORLD!")) == [
            "[CLS]",
            "▁hello",
            "▁,",
            "▁world",
            "▁!",
            "[SEP]",
        ]
        assert pieces(tok, tok.encode("unaffable", add_special=False)) == ["▁un", "aff", "able"]
        assert pieces(tok, tok.encode("unknown 中", add_special=False)) == ["[UNK]", "▁中"]
        assert pieces(tok, tok.encode("Café", add_special=False)) == [
            "▁cafe"
        ]  # lower-cased, accents stripped
        assert tok.decode(tok.encode("hello unaffable")) == " hello unaffable"

    def test_hugging_face_spelling_is_accepted(self):
        hf = [
            t if t.startswith("[") else ("##" + t if not t.startswith("▁") else t[1:])
            for t in self.GGUF_SPELLING
        ]
        assert "##aff" in hf
        a = load_tokenizer(wordpiece_metadata(self.GGUF_SPELLING))
        b = load_tokenizer(wordpiece_metadata(hf))
        assert a.encode("Hello, unaffable world!") == b.encode("Hello, unaffable world!")

    def test_case_kept_when_the_file_says_so(self):
        tok = load_tokenizer(
            wordpiece_metadata(
                self.GGUF_SPELLING + ["▁Hello"], **{"tokenizer.ggml.normalizer.lowercase": False}
            )
        )
        assert pieces(tok, tok.encode("Hello", add_special=False)) == ["▁Hello"]


class TestBadInput:
    @pytest.mark.parametrize(
        "metadata,message",
        [
            ({}, "tokenizer.ggml.model"),
            (
                {"tokenizer.ggml.model": "t5", "tokenizer.ggml.tokens": ["a"]},
                "unsupported tokenizer model",
            ),
            ({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": []}, "tokens"),
            ({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", 3]}, "strings"),
            (
                {
                    "tokenizer.ggml.model": "llama",
                    "tokenizer.ggml.tokens": ["a", "b"],
                    "tokenizer.ggml.scores": [1.0],
                },
                "scores",
            ),
            (
                {
                    "tokenizer.ggml.model": "gpt2",
                    "tokenizer.ggml.tokens": ["a"],
                    "tokenizer.ggml.pre": "nonsense",
                },
                "pre-tokenizer",
            ),
            ({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]}, "merges"),
            (
                {
                    "tokenizer.ggml.model": "llama",
                    "tokenizer.ggml.tokens": ["a"],
                    "tokenizer.ggml.bos_token_id": "x",
                },
                "integer",
            ),
        ],
    )
    def test_invalid_metadata_is_a_clear_400(self, metadata, message):
        with pytest.raises(InvalidModelFile, match=message) as raised:
            load_tokenizer(metadata)
        assert raised.value.status == 400

    def test_out_of_range_ids(self):
        tok = load_tokenizer(bpe_metadata([]))
        for bad in (-1, tok.vocab_size, 10**12):
            with pytest.raises(BadRequest, match="out of range"):
                tok.token_to_piece(bad)
            with pytest.raises(BadRequest):
                tok.decode([5, bad])
        with pytest.raises(TypeError):
            tok.encode(b"bytes")

    def test_out_of_range_special_ids_are_ignored(self):
        tok = load_tokenizer(spm_metadata([], **{"tokenizer.ggml.eos_token_id": 10**6}))
        assert tok.eos_id == 2  # the SentencePiece default stays, as in llama.cpp
