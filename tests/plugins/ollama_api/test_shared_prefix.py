"""A prefix cached for one conversation serves another on a different slot, through the real
server and client: the second conversation with the same long system prompt evaluates only its
own tokens, copied keys and values stand in for the rest, and its answer is the same."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import ollama
import pytest

from ollamakit.kernel import make_kernel
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit_scheduler.testing import serve_in_thread

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)
SYSTEM = "You are a careful assistant. Answer in one short sentence. " * 8
OPTIONS = {"temperature": 0, "num_predict": 6, "num_ctx": 1024}


@pytest.fixture
def served(settings, tmp_path):
    kernel = make_kernel(replace(settings, num_parallel=2))
    path = tiny_llama(tmp_path / "tiny.gguf", context_length=1024, chat_template=CHATML)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with serve_in_thread(kernel) as server:
            client = ollama.Client(host=server.url)
            client.create_blob(path)
            for name in ("tiny", "other"):
                client.create(model=name, files={"tiny.gguf": digest})
            yield kernel, client
    finally:
        kernel.close()


def chat(client, model: str, question: str) -> dict:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return client.chat(model=model, messages=messages, options=OPTIONS)


def rendered(question: str) -> str:
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def runner_of(kernel, name: str):
    return next(
        e for e in kernel.scheduler._loaded.values() if e.model.short_name.split(":")[0] == name
    ).runner


def test_a_second_conversation_evaluates_only_its_own_tokens(served):
    kernel, client = served
    first = chat(client, "tiny", "What is the capital of France?")
    runner = runner_of(kernel, "tiny")
    assert len(next(iter(kernel.scheduler._loaded.values())).worker.slots) == 2
    before = runner.tokens_fed
    second = chat(client, "tiny", "Name a color.")
    fed = runner.tokens_fed - before
    # the prompts part at the question: what comes before it is copied from the first
    # conversation's slot
    first_ids, second_ids = (
        runner.tokenizer.encode(rendered(q))
        for q in ("What is the capital of France?", "Name a color.")
    )
    shared = next(i for i, (a, b) in enumerate(zip(first_ids, second_ids)) if a != b)
    assert shared > len(SYSTEM) and second.prompt_eval_count == len(second_ids)
    # evaluated: the rest of the prompt, and the answer's tokens but the last
    assert fed == len(second_ids) - shared + second.eval_count - 1
    # and the first conversation kept its slot: asked again, only its last token is evaluated
    before = runner.tokens_fed
    again = chat(client, "tiny", "What is the capital of France?")
    assert runner.tokens_fed - before == 1 + again.eval_count - 1
    assert again.message.content == first.message.content
    # the same answer as a model that never saw the first conversation
    assert chat(client, "other", "Name a color.").message.content == second.message.content
