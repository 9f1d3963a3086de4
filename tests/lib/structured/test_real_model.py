"""SmolLM2-135M under every schema in ``structured_schemas.py``, several prompts each, sampling at
temperature 0.8: every answer must end by itself, parse, and validate — 100%.

The requests run concurrently so the scheduler batches them into shared forward passes."""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import jsonschema
import ollama
import pydantic
import pytest

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing import models
from ollamakit_scheduler.testing import serve_in_thread

from structured_schemas import SCHEMAS

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

# A recursive schema bounds each level but not the depth: a small model that repeats itself can
# nest for hundreds of tokens. The random-logits tests cover it; here every answer is short.
CHOSEN = {name: schema for name, schema in SCHEMAS.items() if name != "recursive_tree"}
PROMPTS = (
    "Give one example as JSON.",
    "Make up plausible data. Reply with JSON only.",
    "Fill in the fields.",
)
PARALLEL = 16
SAFETY_LIMIT = 400  # never reached by these schemas; a cut answer would fail the test, not pass it


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("structured")
    settings = replace(Settings(models_dir=root), num_parallel=PARALLEL, max_queue=512)
    kernel = make_kernel(settings)
    with serve_in_thread(kernel, threads=PARALLEL + 4) as server:
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


# A schema as pydantic writes it: no ``additionalProperties`` anywhere, plain strings. (No
# docstring: pydantic would put it in the schema.)
class Pet(pydantic.BaseModel):
    name: str
    species: str
    age: int
    nickname: str | None = None


PET_SCHEMA = Pet.model_json_schema()
PET_SEEDS = 20
PET_LIMIT = 120  # a whole answer takes about 30 tokens
PET_KEYS = ["name", "species", "age", "nickname"]
KEY = re.compile(r'(?:\{|, )"([a-z]+)": ')  # a key in the answer's one layout


def ask_pet(client, seed: int):
    reply = client.chat(
        model="smollm2",
        messages=[{"role": "user", "content": "Describe a pet as JSON."}],
        format=PET_SCHEMA,
        options={"temperature": 0.8, "seed": seed, "num_predict": PET_LIMIT},
    )
    return seed, reply.done_reason, reply.message.content


def test_a_pydantic_schema_gets_only_its_properties_in_order(smollm2_server):
    """Ollama's reading (llama.cpp's grammar): no ``additionalProperties`` means the declared
    properties only, the required ones in order, then the optional one; over many samples. A
    string value is unbounded in both grammars, so a sample may repeat itself inside one until
    ``num_predict``: its keys so far must still be the declared ones, in order."""
    assert "additionalProperties" not in json.dumps(PET_SCHEMA)
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda seed: ask_pet(smollm2_server, seed), range(PET_SEEDS)))
    failures, whole = [], 0
    for seed, reason, text in results:
        try:
            if reason == "stop":
                keys = list(json.loads(text))
                assert keys in (PET_KEYS[:3], PET_KEYS), keys
                Pet.model_validate_json(text)
                whole += 1
            else:
                assert reason == "length", reason
                keys = KEY.findall(text)
                assert keys == PET_KEYS[: len(keys)], keys
        except (AssertionError, ValueError) as exc:
            failures.append(f"seed {seed}: {text!r}: {exc}")
    assert not failures, "\n".join(failures)
    assert whole >= PET_SEEDS * 3 // 4, f"only {whole} of {PET_SEEDS} answers ended by themselves"
