"""Ollama's embed (a batch of inputs, L2-normalised vectors) and the legacy embeddings (one
prompt, the model's raw vector).

Both load the model through the scheduler and call the runner's ``embed(batch)``: BERT-style
encoders pool as their file says; decoder models can embed too (mean of their final hidden
states). No capability check is made, as in Ollama.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import BadRequest, Cancelled, OllamaError
from ..events import Metrics
from ..interfaces import Lease, Tokenizer
from ..options import merged
from ..web.body import field
from .answer import Report, nanoseconds_since
from .models import find_model
from .requests import parse_keep_alive, parse_options

MAX_INPUTS = 1 << 16
# Inputs go to the runner in parts of at most this many inputs and about this many tokens: an
# abandoned batch stops between parts, and other requests get the model between them too. 16
# inputs still give an encoder's matrix products a useful number of rows.
PART_INPUTS = 16
PART_TOKENS = 4096
TOO_LONG = "the input length exceeds the context length"


def parse_inputs(value) -> list[str]:
    """``input``: a string or a list of strings; ``""``, ``[]`` or nothing embeds nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        if len(value) > MAX_INPUTS:
            raise BadRequest(f"too many inputs: {len(value)} (at most {MAX_INPUTS})")
        return value
    raise BadRequest("invalid input type")


def fit_context(tokens: list[int], num_ctx: int, truncate: bool, tokenizer: Tokenizer) -> list[int]:
    """The tokens of one input within ``num_ctx``: cut at the end, keeping a closing special
    token (BERT's [SEP], an appended EOS) so the model still sees a complete input."""
    if len(tokens) <= num_ctx:
        return tokens
    if not truncate:
        raise BadRequest(TOO_LONG)
    closing = {tokenizer.sep_id}
    if tokenizer.add_eos:
        closing.add(tokenizer.eos_id)
    closing.discard(None)
    if tokens[-1] in closing and num_ctx > 1:
        return tokens[: num_ctx - 1] + tokens[-1:]
    return tokens[:num_ctx]


def parts(batch: list[list[int]]):
    """``batch`` cut, in order, into runs of at most ``PART_INPUTS`` inputs and about
    ``PART_TOKENS`` tokens (at least one input each)."""
    part: list[list[int]] = []
    size = 0
    for tokens in batch:
        if part and (len(part) == PART_INPUTS or size + len(tokens) > PART_TOKENS):
            yield part
            part, size = [], 0
        part.append(tokens)
        size += len(tokens)
    if part:
        yield part


def run_embeddings(
    lease: Lease, texts: list[str], truncate: bool, gone=None
) -> tuple[list[np.ndarray], int]:
    """Raw vectors for ``texts`` on the leased model, and the number of tokens evaluated.
    ``gone`` says whether the client left: the batch then stops before its next part."""
    tokenizer = lease.tokenizer
    batch = []
    for text in texts:  # 64 MiB of text takes minutes to tokenize: stop when no one waits
        if gone is not None and gone():
            raise Cancelled("client disconnected")
        tokens = tokenizer.encode(text, add_special=True, parse_special=True)
        batch.append(fit_context(tokens, lease.num_ctx, truncate, tokenizer))
    vectors = []
    for part in parts(batch):
        if gone is not None and gone():
            raise Cancelled("client disconnected")
        vectors.extend(lease.runner.embed(part))
    for vector in vectors:
        if not np.all(np.isfinite(vector)):
            raise BadRequest("the embedding contains NaN or Inf values")
    return vectors, sum(len(tokens) for tokens in batch)


def normalize(vector: np.ndarray, dimensions: int = 0) -> list[float]:
    """L2-normalised (after cutting to ``dimensions`` when 0 < dimensions < length), as the
    shortest decimal of each float32 value, as Go prints a []float32."""
    vector = np.asarray(vector, dtype=np.float64)
    if 0 < dimensions < len(vector):
        vector = vector[:dimensions]
    norm = math.sqrt(float(vector @ vector))
    if norm > 0:
        vector = vector / norm
    return [float(str(x)) for x in vector.astype(np.float32)]


def embed(kernel, body: dict, *, gone=None, started: int | None = None) -> dict:
    """The reply object of a native ``/api/embed`` request. ``gone`` says whether the client
    left: the batch then stops."""
    started = started or time.perf_counter_ns()
    name = field(body, "model", str, "")
    texts = parse_inputs(body.get("input"))
    truncate = field(body, "truncate", bool, True)
    dimensions = field(body, "dimensions", int, 0)
    keep_alive = parse_keep_alive(body.get("keep_alive"))
    options = parse_options(body)
    model = find_model(kernel, name, embedding=True)
    lease = kernel.scheduler.acquire(model, merged(model.params, options), keep_alive, gone)
    try:
        load_ns = nanoseconds_since(started)
        if not texts:
            return {"model": name, "embeddings": []}
        vectors, count = run_embeddings(lease, texts, truncate, gone=gone)
    finally:
        lease.release()
    Report(kernel, model, "embed", started).done(Metrics(prompt_eval_count=count))
    reply = {
        "model": name,
        "embeddings": [normalize(v, dimensions) for v in vectors],
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
        "prompt_eval_count": count,
    }
    return {k: v for k, v in reply.items() if v != 0}


def embedding(kernel, body: dict, *, gone=None) -> dict:
    """The reply object of a legacy ``/api/embeddings`` request: one prompt, the model's vector
    as float64 values, no metrics."""
    started = time.perf_counter_ns()
    name = field(body, "model", str, "")
    if not name:
        raise BadRequest("model is required")
    prompt = field(body, "prompt", str, "")
    keep_alive = parse_keep_alive(body.get("keep_alive"))
    options = parse_options(body)
    model = find_model(kernel, name, embedding=True)
    lease = kernel.scheduler.acquire(model, merged(model.params, options), keep_alive, gone)
    try:
        if not prompt:
            return {"embedding": []}
        try:
            vectors, count = run_embeddings(lease, [prompt], truncate=True, gone=gone)
        except BadRequest as exc:  # runner errors are 500s on this endpoint
            raise OllamaError(exc.message) from None
    finally:
        lease.release()
    Report(kernel, model, "embed", started).done(Metrics(prompt_eval_count=count))
    return {"embedding": np.asarray(vectors[0], dtype=np.float64).tolist()}
