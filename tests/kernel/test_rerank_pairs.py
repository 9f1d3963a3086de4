"""A query and a document framed for a cross-encoder (``pair_tokens``): cut longest first, a token
at a time from the longer one, as transformers cuts a pair; and as cheaply for a query of a
million tokens as for a short one, since it is cut once for every document of the request."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ollamakit.inference.rerank import pair_tokens

CLS, SEP = 101, 102
TOKENIZER = SimpleNamespace(bos_id=CLS, sep_id=SEP, eos_id=None)


def cut_one_at_a_time(query: list[int], document: list[int], budget: int):
    query, document = list(query), list(document)
    while len(query) + len(document) > budget:
        (query if len(query) > len(document) else document).pop()
    return query, document


def test_pairs_are_cut_longest_first():
    for q in range(0, 24):
        for d in range(0, 24):
            for num_ctx in range(4, 40):
                query, document = list(range(1, q + 1)), list(range(1000, 1000 + d))
                ids, types = pair_tokens(TOKENIZER, query, document, num_ctx, True)
                kept_q, kept_d = cut_one_at_a_time(query, document, num_ctx - 3)
                assert ids == [CLS, *kept_q, SEP, *kept_d, SEP], (q, d, num_ctx)
                assert types == [0] * (len(kept_q) + 2) + [1] * (len(kept_d) + 1)


def test_a_huge_query_is_cut_without_a_pass_per_token():
    query = list(range(1_000_000))
    started = time.monotonic()
    for _ in range(50):  # one request's documents, each paired with the same query
        ids, _ = pair_tokens(TOKENIZER, query, [7, 8, 9], 512, True)
    assert ids == [CLS, *range(506), SEP, 7, 8, 9, SEP]
    assert time.monotonic() - started < 1.0
