"""Token sampling with llama.cpp's sampler chain, vectorised with numpy.

The order is llama.cpp's default: penalties, top_k, typical_p, top_p, min_p, temperature, then a
draw from the remaining distribution. Temperature 0 keeps only the best token (after the
penalties), so it is greedy. Each sequence owns its random generator: the same seed and options
give the same tokens, whatever else the server is doing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ollamakit.options import Options


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    values = np.asarray(logits, dtype=np.float64)
    top = values.max()
    return values - top - np.log(np.exp(values - top).sum())


class Sampler:
    def __init__(self, options: Options, num_ctx: int):
        self.options = options
        self.window = num_ctx if options.repeat_last_n == -1 else options.repeat_last_n
        self.rng = np.random.default_rng(options.seed if options.seed >= 0 else None)
        o = options
        self.penalise = self.window > 0 and (
            o.repeat_penalty != 1.0 or o.presence_penalty != 0.0 or o.frequency_penalty != 0.0
        )

    def apply_penalties(self, logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        """Repeat, frequency and presence penalties over the last ``repeat_last_n`` tokens."""
        if not self.penalise or not len(history):
            return logits
        recent = np.asarray(history[-self.window :], dtype=np.int64)
        recent = recent[(recent >= 0) & (recent < logits.shape[0])]
        if recent.size == 0:
            return logits
        ids, counts = np.unique(recent, return_counts=True)
        o = self.options
        values = logits[ids]
        # Dividing a negative logit would raise it, so those are multiplied instead.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            penalised = np.where(values <= 0, values * o.repeat_penalty, values / o.repeat_penalty)
            penalised = penalised - counts * o.frequency_penalty - o.presence_penalty
        # A token a format forbids (-inf) stays forbidden: with repeat_penalty 0 it would become
        # NaN (-inf * 0) and be drawn. Others stay finite (x / 0 is inf, which breaks softmax).
        limit = np.finfo(np.float32).max
        values = np.where(
            np.isneginf(values), values, np.clip(np.nan_to_num(penalised, nan=0.0), -limit, limit)
        )
        logits = logits.copy()
        logits[ids] = values
        return logits

    def sample(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        o = self.options
        logits = self.apply_penalties(np.asarray(logits, dtype=np.float32), history)
        if o.temperature <= 0.0:
            return int(np.argmax(logits))

        # Candidates, kept sorted by logit (best first).
        size = logits.shape[0]
        if 0 < o.top_k < size:
            ids = np.argpartition(-logits, o.top_k - 1)[: o.top_k]
        else:
            ids = np.arange(size)
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        values = logits[ids].astype(np.float64)

        if o.typical_p < 1.0 and len(ids) > 1:
            probs = _softmax(values)
            entropy = -np.sum(probs * np.log(np.maximum(probs, 1e-300)))
            surprise = np.abs(-np.log(np.maximum(probs, 1e-300)) - entropy)
            order = np.argsort(surprise, kind="stable")
            count = int(np.searchsorted(np.cumsum(probs[order]), o.typical_p)) + 1
            keep = np.sort(order[: min(count, len(order))])  # back to best-first order
            ids, values = ids[keep], values[keep]

        if o.top_p < 1.0 and len(ids) > 1:
            count = int(np.searchsorted(np.cumsum(_softmax(values)), o.top_p)) + 1
            ids, values = ids[:count], values[:count]

        if o.min_p > 0.0 and len(ids) > 1:
            keep = values >= values[0] + np.log(o.min_p)
            ids, values = ids[keep], values[keep]

        probs = _softmax(values / o.temperature)
        cumulative = np.cumsum(probs)
        pick = int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))
        return int(ids[min(pick, len(ids) - 1)])


def token_logprobs(
    logits: np.ndarray, token: int, top_n: int
) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability under the model's own distribution (before any
    sampling transform), and the ``top_n`` most likely tokens with theirs."""
    logprobs = log_softmax(logits)
    top: list[tuple[int, float]] = []
    if top_n > 0:
        n = min(top_n, logprobs.shape[0])
        ids = np.argpartition(-logprobs, n - 1)[:n]
        ids = ids[np.argsort(-logprobs[ids], kind="stable")]
        top = [(int(i), float(logprobs[i])) for i in ids]
    return float(logprobs[token]), top
