"""SmolLM2-135M under every schema in ``structured_schemas.py``, several prompts each, sampling at
temperature 0.8: every answer must end by itself, parse, and validate — 100%.

The requests run concurrently so the scheduler batches them into shared forward passes."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import jsonschema
import ollama
import pytest

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing import models
from ollamakit_scheduler.testing import ServerThread

from structured_schemas import SCHEMAS

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

# A recursive schema bounds each level but not the depth: a small model that repeats itself can
# nest for hundreds of tokens. The random-logits tests cover it; here every answer is short.
CHOSEN = {name: schema for name, schema in SCHEMAS.items() if name != "recursive_tree"}
PROMPTS = ("Give one example as JSON.", "Make up plausible data. Reply with JSON only.", "Fill in the fields.")
PARALLEL = 16
SAFETY_LIMIT = 400  # never reached by these schemas; a cut answer would fail the test, not pass it


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("structured")
    settings = replace(Settings(models_dir=root), num_parallel=PARALLEL, max_queue=512)
    kernel = make_kernel(settings)
    with ServerThread(kernel, threads=PARALLEL + 4) as server:
        client = ollama.Client(host=server.url)
        path = models.smollm2_q4_1()
        digest = client.create_blob(path)
        assert digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        client.create(model="smollm2", files={"smollm2.gguf": digest})
        yield client
    kernel.close()


def ask(client, name: str, prompt: str, seed: int):
    topic = name.replace("_", " ")
    reply = client.chat(
        model="smollm2",
        messages=[{"role": "user", "content": f"{prompt} Topic: {topic}."}],
        format=CHOSEN[name],
        options={"temperature": 0.8, "seed": seed, "num_predict": SAFETY_LIMIT},
    )
    return name, prompt, reply.done_reason, reply.message.content, reply.eval_count


def test_every_schema_every_prompt_validates(smollm2_server):
    jobs = [(name, prompt, seed) for name in sorted(CHOSEN) for seed, prompt in enumerate(PROMPTS)]
    assert len(CHOSEN) >= 20 and len(jobs) >= 60
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda job: ask(smollm2_server, *job), jobs))
    failures = []
    for name, prompt, reason, text, count in results:
        try:
            assert reason == "stop", f"ended by {reason} after {count} tokens"
            jsonschema.validate(json.loads(text), CHOSEN[name])
        except (AssertionError, ValueError, jsonschema.ValidationError) as exc:
            failures.append(f"{name} / {prompt!r}: {text!r}: {exc}")
    assert not failures, "\n".join(failures)
