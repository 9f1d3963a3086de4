"""Pair merging in O(n log n) for long words, shared by BPE and SentencePiece.

Both tokenizers repeatedly merge the adjacent pair with the best priority (lowest BPE rank,
highest SentencePiece score), the leftmost one among equals. For short words a plain list scan is
fastest; a long word (a run of letters with no spaces, a long CJK sentence) needs a heap, or one
pasted blob would cost seconds.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from math import inf
from collections.abc import Callable

LONG_WORD = 48  # symbols; above this the heap wins

Priority = Callable[[str, str], "float | None"]


def merge_pairs(symbols: list[str], priority: Priority) -> list[str]:
    """Merge ``symbols`` pairwise, lowest ``priority(left, right)`` first (None: never merge),
    the leftmost pair among equals: a list scan for short words, a heap for long ones."""
    if len(symbols) < 2:
        return symbols
    if len(symbols) > LONG_WORD:
        return merge_by_priority(symbols, priority)

    def cost(left: str, right: str) -> float:
        p = priority(left, right)
        return inf if p is None else p

    costs = [cost(a, b) for a, b in zip(symbols, symbols[1:])]
    while True:
        best = min(costs)
        if best == inf:
            return symbols
        i = costs.index(best)  # leftmost pair among equals
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        del costs[i]
        if not costs:
            return symbols
        if i > 0:
            costs[i - 1] = cost(symbols[i - 1], symbols[i])
        if i < len(symbols) - 1:
            costs[i] = cost(symbols[i], symbols[i + 1])


def merge_by_priority(symbols: list[str], priority: Priority) -> list[str]:
    """Merge ``symbols`` pairwise, lowest ``priority(left, right)`` first (None: never merge),
    ties to the left. A heap entry remembers both texts; when either side has changed since, the
    entry is stale and skipped."""
    text: list = list(symbols)  # None where a symbol was merged into the one before it
    n = len(text)
    after = list(range(1, n + 1))
    after[-1] = -1
    before = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        p = priority(text[i], text[i + 1])
        if p is not None:
            heap.append((p, i, text[i], text[i + 1]))
    heapify(heap)
    while heap:
        _, i, left, right = heappop(heap)
        j = after[i]
        if j < 0 or text[i] != left or text[j] != right:
            continue
        merged = text[i] = left + right
        text[j] = None
        k = after[i] = after[j]
        if k >= 0:
            before[k] = i
            p = priority(merged, text[k])
            if p is not None:
                heappush(heap, (p, i, merged, text[k]))
        h = before[i]
        if h >= 0:
            p = priority(text[h], merged)
            if p is not None:
                heappush(heap, (p, h, text[h], merged))
    return [t for t in text if t is not None]
