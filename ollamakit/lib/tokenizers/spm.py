"""SentencePiece BPE (``tokenizer.ggml.model = llama``), merged the way llama.cpp merges it.

Spaces are written as "▁"; the text starts as single characters and, repeatedly, the adjacent
pair whose concatenation is a token with the highest score is merged (leftmost first on ties).
Characters left without a token are emitted as byte tokens ``<0xXX>``.

The merge loop is quadratic in the worst case, so the text is first cut where no token can ever
reach across: before a "▁" whose preceding character never precedes "▁" inside any token. Merges
on either side of such a cut cannot interact, so each piece can be merged (and cached) alone.
"""

from __future__ import annotations

import re
from functools import cached_property

from .merging import merge_pairs
from .vocab import Vocabulary

SPACE = "\u2581"
_CACHE_LIMIT = 1 << 16


class SentencePieceEncoder:
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self._scores = vocab.scores or [0.0] * vocab.size
        self._cache: dict[str, tuple[int, ...]] = {}
        self._joins_before_space  # built now, so the first request does not pay for it

    @cached_property
    def _joins_before_space(self) -> frozenset[str]:
        """Characters that some token has immediately before a "▁" (so no cut may go there)."""
        # One regex pass over all tokens joined by NUL; a NUL inside some token could only add
        # characters here, which means fewer cuts: never a wrong one.
        return frozenset(re.findall("([^\x00])(?=" + SPACE + ")", "\x00".join(self.vocab.tokens)))

    @cached_property
    def _byte_tokens(self) -> list[int | None]:
        token_to_id = self.vocab.token_to_id
        found = []
        for byte in range(256):
            token_id = token_to_id.get(f"<0x{byte:02X}>")
            if token_id is None and byte < 0x80:
                token_id = token_to_id.get(chr(byte))
            found.append(token_id)
        return found

    def encode(self, text: str, out: list[int]) -> None:
        """Encode text whose spaces are already escaped as "▁"."""
        cache = self._cache
        for piece in self._pieces(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._encode_piece(piece)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[piece] = ids
            out.extend(ids)

    def _pieces(self, text: str) -> list[str]:
        joins = self._joins_before_space
        pieces, start = [], 0
        at = text.find(SPACE, 1)
        while at > 0:
            if text[at - 1] not in joins:
                pieces.append(text[start:at])
                start = at
            at = text.find(SPACE, at + 1)
        pieces.append(text[start:])
        return pieces

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        token_to_id = self.vocab.token_to_id
        ids = []
        for symbol in self._merge(piece):
            token_id = token_to_id.get(symbol)
            if token_id is not None:
                ids.append(token_id)
                continue
            for byte in symbol.encode("utf-8"):
                byte_id = self._byte_tokens[byte]
                if byte_id is None:
                    byte_id = self.vocab.special.unk
                if byte_id is not None:
                    ids.append(byte_id)
        return tuple(ids)

    def _merge(self, piece: str) -> list[str]:
        token_to_id, scores = self.vocab.token_to_id, self._scores

        def priority(left: str, right: str) -> float | None:
            # Highest score first: merge_pairs takes the lowest priority.
            token_id = token_to_id.get(left + right)
            return None if token_id is None else -scores[token_id]

        return merge_pairs(list(piece), priority)
