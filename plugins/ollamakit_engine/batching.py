"""What both engines do with a batch before any arithmetic: check it, and cut it into steps.

A batch is ``[(cache, new_tokens), ...]``, one entry per sequence, as the scheduler hands it to
``forward``. Both the graph engine and the numpy engine take it the same way, so these checks,
this packing and the runner facts built on them (``RunnerBase``) live once, here.
"""

from __future__ import annotations

from ollamakit.errors import BadRequest
from ollamakit.images import whole_images
from ollamakit.interfaces import Runner


def check_batch(batch, vocab_size: int) -> None:
    """Refuse a batch no engine can run, before any cache is touched."""
    if not batch:
        raise BadRequest("forward needs at least one sequence")
    seen = set()
    for cache, tokens in batch:
        if id(cache) in seen:
            raise BadRequest("a sequence appears twice in one batch")
        seen.add(id(cache))
        if not tokens:
            raise BadRequest("a sequence in the batch has no tokens")
        if cache.n_past + len(tokens) > cache.num_ctx:
            raise BadRequest(
                f"{cache.n_past} cached + {len(tokens)} new tokens exceed the context of {cache.num_ctx}"
            )
        low, high = min(tokens), max(tokens)
        if low < 0 or high >= vocab_size:
            raise BadRequest(
                f"token id {low if low < 0 else high} is outside the vocabulary of {vocab_size}"
            )


def plan_steps(batch, num_batch: int):
    """Steps of at most ``num_batch`` rows, sequences in order, a long prompt over several.

    Yields one list per step of ``(cache, tokens, start, row, owner)``: the tokens of one
    sequence in this step, the cache position of the first, the step row it lands on, and the
    index of the sequence when this part ends its tokens (else None)."""
    offsets = [0] * len(batch)
    positions = [cache.n_past for cache, _ in batch]
    while True:
        budget, row, parts = num_batch, 0, []
        for index, (cache, tokens) in enumerate(batch):
            # an image's rows stay in one step, unless the image alone is longer than a step
            take = whole_images(tokens[offsets[index] :], budget) if budget > 0 else 0
            if take == 0 and row == 0 and offsets[index] < len(tokens):
                take = min(len(tokens) - offsets[index], budget)
            if take <= 0:
                continue
            part = tokens[offsets[index] : offsets[index] + take]
            offsets[index] += take
            parts.append(
                (
                    cache,
                    part,
                    positions[index],
                    row,
                    index if offsets[index] == len(tokens) else None,
                )
            )
            positions[index] += take
            row += take
            budget -= take
        if not parts:
            return
        yield parts


class RunnerBase(Runner):
    """The part of the ``Runner`` contract both engines answer alike. A subclass sets ``hp``,
    ``vocab_size``, ``_weights_bytes``, ``_caches`` (a WeakSet of its live caches) and
    ``_closed``."""

    @property
    def architecture(self) -> str:
        return self.hp.arch

    @property
    def memory_bytes(self) -> int:
        """The weights and every live cache."""
        return self._weights_bytes + sum(cache.nbytes for cache in list(self._caches))

    def _check(self, batch) -> None:
        if self._closed:
            raise RuntimeError("runner is closed")
        check_batch(batch, self.vocab_size)
