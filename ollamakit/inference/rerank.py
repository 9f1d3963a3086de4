"""Relevance scores for the rerank routes.

A cross-encoder reads the query and a document together, as transformers' tokenizer pairs them
for sentence-transformers' ``CrossEncoder``: ``[CLS] query [SEP] document [SEP]``, the document's
tokens (and its closing [SEP]) in segment 1, cut longest-first to the context. The model's rank
head turns each pair into one score (the classifier's raw output, as llama-server reports it).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import BadRequest, Cancelled
from ..interfaces import Tokenizer
from ..options import merged
from ..web.body import field
from ..events import Metrics
from .answer import Report, nanoseconds_since
from .embed import TOO_LONG, parts
from .models import capabilities, find_model
from .requests import parse_keep_alive, parse_options

MAX_DOCUMENTS = 1 << 12


def parse_documents(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest("documents must be a list of strings")
    if len(value) > MAX_DOCUMENTS:
        raise BadRequest(f"too many documents: {len(value)} (at most {MAX_DOCUMENTS})")
    return value


def pair_tokens(
    tokenizer: Tokenizer, query: list[int], document: list[int], num_ctx: int, truncate: bool
):
    """The ids and segment types of one (query, document) pair within ``num_ctx`` tokens (an
    empty document still closes with its [SEP], as transformers pairs a batch)."""
    cls = tokenizer.bos_id
    sep = tokenizer.sep_id if tokenizer.sep_id is not None else tokenizer.eos_id
    if cls is None or sep is None:
        raise BadRequest("the model's tokenizer cannot frame a query and a document")
    budget = num_ctx - 3
    if len(query) + len(document) > budget:
        if not truncate:
            raise BadRequest(TOO_LONG)
        if budget < 1:
            raise BadRequest("the context is too short for a query and a document")
        # longest first, a token at a time from the longer one (the document's on a tie), as
        # transformers cuts a pair, counted rather than popped: a query of a million tokens
        # is cut once per document, not a million times
        keep = min(len(query), max(budget - len(document), (budget + 1) // 2))
        query, document = query[:keep], document[: budget - keep]
    ids = [cls, *query, sep, *document, sep]
    return ids, [0] * (len(query) + 2) + [1] * (len(document) + 1)


def rerank(kernel, body: dict, *, gone=None) -> dict:
    """One relevance score per document of ``body["documents"]`` against ``body["query"]``, in
    the documents' order: ``{"model", "scores", "prompt_eval_count", "total_duration",
    "load_duration"}``. A model that cannot rerank is a ``BadRequest``."""
    started = time.perf_counter_ns()
    name = field(body, "model", str, "")
    query = field(body, "query", str, "")
    documents = parse_documents(body.get("documents"))
    truncate = field(body, "truncate", bool, True)
    keep_alive = parse_keep_alive(body.get("keep_alive"))
    options = parse_options(body)
    model = find_model(kernel, name, embedding=True)
    if "rerank" not in capabilities(model):
        raise BadRequest(f'"{name}" does not support rerank')
    lease = kernel.scheduler.acquire(model, merged(model.params, options), keep_alive, gone)
    try:
        load_ns = nanoseconds_since(started)
        tokenizer = lease.tokenizer
        query_ids = tokenizer.encode(query, add_special=False, parse_special=True)
        pairs = []
        for doc in documents:
            if gone is not None and gone():
                raise Cancelled("client disconnected")
            document = tokenizer.encode(doc, add_special=False, parse_special=True)
            pairs.append(pair_tokens(tokenizer, query_ids, document, lease.num_ctx, truncate))
        scores: list[float] = []
        for part in parts([ids for ids, _ in pairs]):
            if gone is not None and gone():
                raise Cancelled("client disconnected")
            types = [types for _, types in pairs[len(scores) : len(scores) + len(part)]]
            scores.extend(
                float(vector[0]) for vector in lease.runner.embed(part, token_types=types)
            )
    finally:
        lease.release()
    if not np.all(np.isfinite(scores)):
        raise BadRequest("the scores contain NaN or Inf values")
    count = sum(len(ids) for ids, _ in pairs)
    Report(kernel, model, "rerank", started).done(Metrics(prompt_eval_count=count))
    return {
        "model": name,
        "scores": scores,
        "prompt_eval_count": count,
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
    }
