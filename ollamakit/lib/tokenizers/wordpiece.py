"""BERT WordPiece (``tokenizer.ggml.model = bert``), as llama.cpp runs it.

GGUF files store the WordPiece vocabulary with a phantom space: a word-initial piece "hello" is
stored as "▁hello" and a continuation "##ing" as plain "ing". Each word (after lower-casing,
accent stripping and splitting off punctuation) gets a leading "▁" and is covered greedily by the
longest matching tokens; a word that cannot be covered becomes the unknown token.

A vocabulary still in the Hugging Face spelling ("##ing", no "▁" anywhere) is rewritten into the
GGUF spelling on load, so both kinds of file tokenize alike.
"""

from __future__ import annotations

from . import unicode
from .spm import SPACE
from .vocab import Vocabulary

_CACHE_LIMIT = 1 << 16


def is_hugging_face_spelling(tokens: list[str]) -> bool:
    return not any(t.startswith(SPACE) for t in tokens) and any(t.startswith("##") for t in tokens)


def to_gguf_spelling(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return SPACE + token


def _is_chinese(cp: int) -> bool:
    # The CJK blocks BERT's basic tokenizer splits into single characters.
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPieceEncoder:
    def __init__(self, vocab: Vocabulary, lowercase: bool, strip_accents: bool):
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.max_token_chars = max(len(t) for t in vocab.tokens)
        self._cache: dict[str, tuple[int, ...]] = {}

    def words(self, text: str) -> list[str]:
        """Normalise and split: whitespace ends a word, punctuation (and ASCII symbols, and CJK
        ideographs) stand alone, control characters vanish."""
        if self.strip_accents:
            text = "".join(unicode.nfd_base(ch) for ch in text)
        words: list[str] = []
        current: list[str] = []
        for ch in text:
            cp = ord(ch)
            if cp in unicode.WHITESPACE:
                if current:
                    words.append("".join(current))
                    current = []
                continue
            category = unicode.major_category(cp)
            if cp == 0 or cp == 0xFFFD or category == "C":
                continue
            if self.strip_accents and category == "M":
                continue
            if self.lowercase:
                ch = unicode.to_lower(ch)
            if category == "P" or (cp < 0x7F and category == "S") or _is_chinese(cp):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
        return words

    def encode(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for word in self.words(text):
            ids = cache.get(word)
            if ids is None:
                ids = self._encode_word(word)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = ids
            out.extend(ids)

    def _encode_word(self, word: str) -> tuple[int, ...]:
        token_to_id = self.vocab.token_to_id
        spelled = SPACE + word
        n, i, ids = len(spelled), 0, []
        while i < n:
            for j in range(min(n, i + self.max_token_chars), i, -1):
                token_id = token_to_id.get(spelled[i:j])
                if token_id is not None:
                    ids.append(token_id)
                    i = j
                    break
            else:  # some position has no token at all: the whole word is unknown
                unk = self.vocab.special.unk
                return () if unk is None else (unk,)
        return tuple(ids)
