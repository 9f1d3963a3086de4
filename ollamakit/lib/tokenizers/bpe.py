"""GPT-2 style byte-level BPE (``tokenizer.ggml.model = gpt2``).

Text is split into words by the pre-tokenizer, each word's UTF-8 bytes are spelled with GPT-2's
printable byte alphabet, and inside each word the adjacent pair with the lowest merge rank is merged
(leftmost first on ties) until no pair has a rank. Words repeat a lot, so results are cached.
"""

from __future__ import annotations

from functools import cached_property

from ollamakit.errors import InvalidModelFile

from .merging import merge_pairs
from .pretokenizers import PreTokenizer, PreTokenizerSpec
from .vocab import Vocabulary

_CACHE_LIMIT = 1 << 16


def _byte_alphabet() -> list[str]:
    """GPT-2's map from byte values to printable characters: printable Latin-1 bytes stand for
    themselves, the rest are shifted up past U+0100 in order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    alphabet, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            alphabet[byte] = chr(byte)
        else:
            alphabet[byte] = chr(256 + shifted)
            shifted += 1
    return [alphabet[b] for b in range(256)]


BYTE_TO_CHAR = _byte_alphabet()
CHAR_TO_BYTE = {ch: b for b, ch in enumerate(BYTE_TO_CHAR)}
_LATIN1_TO_ALPHABET = {b: ch for b, ch in enumerate(BYTE_TO_CHAR)}


def byte_encode(word: str) -> str:
    """The word's UTF-8 bytes, each written as its GPT-2 alphabet character."""
    return word.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_ALPHABET)


def byte_decode(text: str) -> bytes:
    """Inverse of :func:`byte_encode` for a token text; characters outside the alphabet keep their
    UTF-8 bytes (llama.cpp writes those as an error marker; the raw text is more useful)."""
    out = bytearray()
    for ch in text:
        byte = CHAR_TO_BYTE.get(ch)
        if byte is None:
            out += ch.encode("utf-8")
        else:
            out.append(byte)
    return bytes(out)


def _split_merge(line: str) -> tuple[str, str]:
    """A merges line "left right"; the separating space is the first one after the first character."""
    at = line.find(" ", 1)
    return (line[:at], line[at + 1 :]) if at > 0 else ("", "")


class BytePairEncoder:
    def __init__(self, vocab: Vocabulary, merges, spec: PreTokenizerSpec):
        if not isinstance(merges, (list, tuple)) or not all(type(m) is str for m in merges):
            raise InvalidModelFile(
                "a gpt2 tokenizer needs a tokenizer.ggml.merges array of strings"
            )
        self.vocab = vocab
        self._merges = merges
        self.spec = spec
        self.pre_tokenizer = PreTokenizer(spec.patterns)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._ranks  # built now, so the first request does not pay for it

    @cached_property
    def _ranks(self) -> dict[tuple[str, str], int]:
        # Keyed by (left, right) pairs: tuples of strings hash from the strings' cached hashes,
        # much cheaper in the merge loop than building "left right". The first line for a pair wins.
        n = len(self._merges)
        return dict(zip(map(_split_merge, reversed(self._merges)), range(n - 1, -1, -1)))

    def encode(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for word in self.pre_tokenizer.split(text):
            ids = cache.get(word)
            if ids is None:
                ids = self._encode_word(byte_encode(word))
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = ids
            out.extend(ids)

    def _encode_word(self, word: str) -> tuple[int, ...]:
        token_to_id = self.vocab.token_to_id
        if self.spec.ignore_merges and word in token_to_id:
            return (token_to_id[word],)
        ids = []
        for symbol in self._merge(word):
            token_id = token_to_id.get(symbol)
            if token_id is not None:
                ids.append(token_id)
                continue
            # No token for the merged piece: fall back to its single characters that are tokens
            # (llama.cpp looks each byte up on its own, which only ever finds ASCII ones).
            ids.extend(token_to_id[ch] for ch in symbol if ch < "\x80" and ch in token_to_id)
        return tuple(ids)

    def _merge(self, word: str) -> list[str]:
        rank = self._ranks.get
        return merge_pairs(list(word), lambda left, right: rank((left, right)))
