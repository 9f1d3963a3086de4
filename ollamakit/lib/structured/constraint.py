"""Constrained decoding for one sequence: before each token is sampled, every token that would
make the text stop being a prefix of a valid answer gets probability zero.

The grammar engine computes the allowed set as a bit mask over the vocabulary (tens of
microseconds: it walks a token trie built once per tokenizer); applying it to the logits is
one vectorised ``where``.
"""

from __future__ import annotations

import llguidance
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from ollamakit.errors import OllamaError

from .formats import FormatSpec
from .vocabulary import engine_tokenizer


class Constraint:
    def __init__(self, spec: FormatSpec, tokenizer, vocab_size: int | None = None):
        self.engine_tokenizer = engine_tokenizer(tokenizer, vocab_size)
        self.matcher = llguidance.LLMatcher(self.engine_tokenizer, spec.grammar, log_level=0)
        self._check()
        self.size = self.engine_tokenizer.vocab_size
        self._bits = allocate_token_bitmask(1, self.size)

    def _check(self) -> None:
        if self.matcher.is_error():
            reason = self.matcher.get_error().strip().splitlines()[0]  # the rest is a state dump
            raise OllamaError(f"format constraint failed: {reason}")

    def allowed(self) -> np.ndarray:
        """Which token ids may come next (a boolean array over the vocabulary)."""
        fill_next_token_bitmask(self.matcher, self._bits)
        self._check()
        return np.unpackbits(self._bits[0].view(np.uint8), bitorder="little", count=self.size).view(
            bool
        )

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with every token the format forbids set to -inf (a new array)."""
        allowed = self.allowed()
        width = logits.shape[0]
        if width != self.size:  # a model wider than its vocabulary: extra rows are never allowed
            allowed = (
                np.resize(allowed, width)
                if width < self.size
                else np.pad(allowed, (0, width - self.size))
            )
        if not allowed.any():
            raise OllamaError("format constraint failed: no token can continue the answer")
        return np.where(allowed, logits, np.float32(-np.inf)).astype(np.float32, copy=False)

    def advance(self, token: int) -> None:
        """The sampled token joins the answer."""
        if not self.matcher.consume_token(int(token)):
            raise OllamaError(f"format constraint failed: token {token} is not allowed here")

    @property
    def complete(self) -> bool:
        """Nothing more can follow: the answer is whole and generation should end now."""
        return self.matcher.is_stopped()

    @property
    def accepting(self) -> bool:
        return self.matcher.is_accepting()
