"""Our tokenizer's vocabulary as the grammar engine sees it: one byte string per token id.

The engine (llguidance) walks a trie of these byte strings to find, for a grammar state, every
token whose bytes keep the text valid. Building that trie costs about a second for a 50k
vocabulary, so it is built once per tokenizer and shared by all its sequences.
"""

from __future__ import annotations

import threading
import weakref

import llguidance

# llguidance's convention: a special token's bytes start with 0xff (never valid UTF-8), so no
# grammar over text can produce it by accident.
SPECIAL_PREFIX = b"\xff"

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _special_name(tokenizer, token: int) -> bytes:
    spell = getattr(tokenizer, "token_text", None)
    name = spell(token) if spell else f"<[{token}]>"
    return SPECIAL_PREFIX + name.encode("utf-8", "replace")


def token_bytes(tokenizer, size: int, total: int) -> tuple[list[bytes], list[int]]:
    """Each token's bytes (control tokens marked special) and the special ids; ids from
    ``size`` to ``total`` (rows the model has but the tokenizer does not) are special too."""
    is_control = getattr(tokenizer, "is_control", None)
    pieces, specials = [], []
    for token in range(total):
        piece = tokenizer.token_to_piece(token) if token < size else b""
        control = token < size and is_control is not None and is_control(token)
        if control or not piece:
            pieces.append(
                _special_name(tokenizer, token)
                if token < size
                else SPECIAL_PREFIX + f"<[{token}]>".encode()
            )
            specials.append(token)
        else:
            pieces.append(piece)
    return pieces, specials


class _Source:
    """What ``llguidance.TokenizerWrapper`` reads: the pieces and a text → ids function."""

    def __init__(self, tokenizer, pieces: list[bytes], specials: list[int], eos: int):
        self._tokenizer = tokenizer
        self.tokens = pieces
        self.special_token_ids = specials
        self.eos_token_id = eos
        bos = getattr(tokenizer, "bos_id", None)
        self.bos_token_id = bos if isinstance(bos, int) and bos >= 0 else None

    def __call__(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return self._tokenizer.encode(text, add_special=False, parse_special=False)


def vocabulary_size(tokenizer, model_size: int | None = None) -> int:
    size = getattr(tokenizer, "vocab_size", None) or model_size
    if not isinstance(size, int) or size <= 0:
        raise ValueError("the tokenizer does not say how many tokens it has")
    return size


def engine_tokenizer(tokenizer, model_size: int | None = None) -> llguidance.LLTokenizer:
    """The grammar engine's view of ``tokenizer`` (built once, then cached). ``model_size`` is
    the model's logits width when it differs from the tokenizer's count (padded vocabularies)."""
    with _lock:
        cached = _cache.get(tokenizer)
        if cached is not None and cached[0] == model_size:
            return cached[1]
        size = vocabulary_size(tokenizer, model_size)
        total = max(size, model_size or 0)
        pieces, specials = token_bytes(tokenizer, size, total)
        eog = sorted(int(t) for t in getattr(tokenizer, "eog_ids", ()) if 0 <= int(t) < size)
        if not eog:
            raise ValueError("the tokenizer has no end-of-generation token")
        source = _Source(tokenizer, pieces, specials, eog[0])
        engine = llguidance.LLTokenizer(
            llguidance.TokenizerWrapper(source),
            n_vocab=total,
            eos_token=eog,
        )
        _cache[tokenizer] = (model_size, engine)
        return engine
