"""The scheduler is replaceable: a minimal one, written only against the kernel's protocols
(``ollamakit.interfaces``, ``ollamakit.events``) and registered through ``make_scheduler`` as a
third party would register it, with the first-party scheduler plugin left out, serves the native
routes and the OpenAI, Anthropic and rerank layers over real HTTP, through the official clients.
This module imports no first-party plugin."""

from __future__ import annotations

import json
import threading

import anthropic
import numpy as np
import ollama
import openai
import pytest
import requests
import waitress

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.events import Chunk, Done, Metrics
from ollamakit.hookspecs import hookimpl
from ollamakit.interfaces import Lease, Runner, Scheduler, Sequence, Tokenizer
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit.options import Options
from ollamakit.web import create_app

EOS, CLS = 256, 257


class ByteTokenizer(Tokenizer):
    """One token per byte, and an end of text."""

    vocab_size = 258
    eog_ids = frozenset({EOS})
    bos_id, eos_id, sep_id = CLS, EOS, None  # a query and a document are framed by these
    add_bos = add_eos = False

    def encode(self, text, add_special=True, parse_special=True):
        return list(text.encode())

    def decode(self, ids, special=False):
        return bytes(i for i in ids if i < 256).decode("utf-8", "replace")

    def token_to_piece(self, token_id, special=False):
        return bytes([token_id]) if token_id < 256 else b""

    def token_text(self, token_id):
        return self.token_to_piece(token_id).decode("utf-8", "replace")


class ShoutingRunner(Runner):
    """Answers are made by its sequences; it embeds each input as (its length, its first byte),
    and scores a (query, document) pair by the document's length."""

    tokenizer = ByteTokenizer()
    vocab_size = 258
    context_length = 512
    memory_bytes = 1 << 20

    def new_cache(self, num_ctx):
        raise AssertionError("this scheduler never asks for a cache")

    def forward(self, batch, should_stop=None):
        raise AssertionError("this scheduler never runs a forward pass")

    def embed(self, batch, token_types=None):
        if token_types is not None:  # the document's tokens and its closing separator
            return [np.array([sum(types) - 1], dtype=np.float32) for types in token_types]
        return [np.array([len(tokens), tokens[0]], dtype=np.float32) for tokens in batch]


class ShoutingSequence(Sequence):
    """Answers with the prompt's last word in capitals, in two chunks."""

    def __init__(self, prompt: list[int]):
        self.prompt = prompt

    def events(self, gone=None):
        word = bytes(t for t in self.prompt if t < 256).decode().split()[-1].upper()
        half = len(word) // 2
        yield Chunk(word[:half])
        yield Chunk(word[half:])
        answer = list(word.encode())
        yield Done(
            "stop",
            Metrics(prompt_eval_count=len(self.prompt), eval_count=len(answer)),
            self.prompt + answer,
        )


class MinimalLease(Lease):
    def __init__(self, scheduler: MinimalScheduler, options: Options):
        self.scheduler = scheduler
        self.runner = scheduler.runner
        self.tokenizer = self.runner.tokenizer
        self.options = options
        self.num_ctx = min(options.num_ctx or 512, self.runner.context_length)

    def start(self, prompt, **settings):
        self.scheduler.started.append(settings)
        return ShoutingSequence(prompt)

    def release(self):
        self.scheduler.held -= 1


class MinimalScheduler(Scheduler):
    def __init__(self):
        self.runner = ShoutingRunner()
        self.held = 0
        self.started: list[dict] = []

    def acquire(self, model, options, keep_alive=None, gone=None):
        self.held += 1
        return MinimalLease(self, options)

    def unload(self, model):
        return False

    def ps(self):
        return []

    def close(self):
        pass


class ThirdParty:
    def __init__(self):
        self.scheduler = MinimalScheduler()

    @hookimpl
    def make_scheduler(self, kernel):
        return self.scheduler


def store_model(kernel, name: str, capability: str = "completion") -> None:
    """A model whose file no engine reads: only this scheduler's runner answers for it."""
    store = kernel.store
    config = {"model_format": "gguf", "model_family": "shout", "capabilities": [capability]}
    config_digest, config_size = store.add_bytes(json.dumps(config).encode())
    model_digest, model_size = store.add_bytes(b"not a model file")
    layers = [mf.Layer(mf.MODEL, model_digest, model_size)]
    store.write_manifest(
        ModelName.parse(name),
        mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size), layers),
    )


@pytest.fixture
def served(tmp_path):
    plugin = ThirdParty()
    kernel = make_kernel(Settings(models_dir=tmp_path), plugins=[plugin], skip=("scheduler",))
    assert kernel.pm.get_plugin("scheduler") is None and kernel.scheduler is plugin.scheduler
    store_model(kernel, "shout")
    store_model(kernel, "ranker", "rerank")
    store_model(kernel, "embedder", "embedding")
    server = waitress.create_server(create_app(kernel), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", plugin.scheduler
    finally:
        server.close()
        thread.join(5)


def test_native_generate_and_chat(served):
    url, scheduler = served
    client = ollama.Client(host=url)
    reply = client.generate(
        model="shout", prompt="say hello", options={"temperature": 0, "top_k": 3}
    )
    assert reply.response == "HELLO" and reply.done_reason == "stop"
    assert reply.eval_count == 5 and reply.prompt_eval_count == len("say hello")
    assert reply.context == list(b"say helloHELLO")
    chunks = [
        part.message.content
        for part in client.chat(
            model="shout", stream=True, messages=[{"role": "user", "content": "go now"}]
        )
    ]
    assert "".join(chunks) == "NOW" and len(chunks) == 3  # two pieces, then the final chunk
    assert scheduler.held == 0  # every lease given back
    assert scheduler.started[0] == {
        "shift": True,
        "truncate": True,
        "logprobs": False,
        "top_logprobs": 0,
        "constraint": None,
    }


def test_openai_and_anthropic_layers(served):
    url, scheduler = served
    chat = openai.OpenAI(base_url=url + "/v1", api_key="unused").chat.completions.create(
        model="shout", messages=[{"role": "user", "content": "hi there"}]
    )
    assert chat.choices[0].message.content == "THERE" and chat.usage.completion_tokens == 5
    text = openai.OpenAI(base_url=url + "/v1", api_key="unused").completions.create(
        model="shout", prompt="a b"
    )
    assert text.choices[0].text == "B"
    message = anthropic.Anthropic(base_url=url, api_key="unused").messages.create(
        model="shout", max_tokens=10, messages=[{"role": "user", "content": "one two"}]
    )
    assert message.content[0].text == "TWO" and message.stop_reason == "end_turn"
    assert scheduler.held == 0


def test_embeddings(served):
    url, scheduler = served
    first, second = ollama.Client(host=url).embed(model="shout", input=["abc", "de"]).embeddings
    assert first == pytest.approx([3 / np.hypot(3, 97), 97 / np.hypot(3, 97)], rel=1e-6)
    assert second == pytest.approx([2 / np.hypot(2, 100), 100 / np.hypot(2, 100)], rel=1e-6)
    data = (
        openai.OpenAI(base_url=url + "/v1", api_key="unused")
        .embeddings.create(model="shout", input="xy")
        .data
    )
    assert data[0].embedding == pytest.approx(
        [2 / np.hypot(2, 120), 120 / np.hypot(2, 120)], rel=1e-6
    )
    assert scheduler.held == 0


def test_without_a_scheduler_the_routes_say_so(tmp_path):
    from falcon.testing import TestClient

    kernel = make_kernel(Settings(models_dir=tmp_path), skip=("scheduler",))
    store_model(kernel, "shout")
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    reply = client.simulate_post("/api/generate", json={"model": "shout", "prompt": "x"})
    assert reply.status_code == 500 and reply.json == {
        "error": "no scheduler plugin is installed, so models cannot be run"
    }
    reply = client.simulate_post(
        "/v1/chat/completions",
        json={"model": "shout", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 500
    assert (
        reply.json["error"]["message"]
        == "no scheduler plugin is installed, so models cannot be run"
    )


def test_rerank_layers(served):
    url, scheduler = served
    body = {
        "model": "ranker",
        "query": "q",
        "documents": ["bb", {"text": "dddd"}, "a", "ccc"],
        "top_n": 2,
        "keep_alive": "1m",
        "options": {"num_ctx": 64},
    }
    native = requests.post(url + "/api/rerank", json=body, timeout=30).json()
    assert native["results"] == [
        {"index": 1, "relevance_score": 4.0},
        {"index": 3, "relevance_score": 3.0},
    ]
    assert (
        native["model"] == "ranker" and native["prompt_eval_count"] == 4 * 4 + 10
    )  # [CLS] q [SEP] d [SEP]
    v1 = requests.post(
        url + "/v1/rerank", json={**body, "return_documents": True}, timeout=30
    ).json()
    assert v1 == {
        "model": "ranker",
        "object": "list",
        "usage": {"prompt_tokens": 26, "total_tokens": 26},
        "results": [
            {"index": 1, "relevance_score": 4.0, "document": {"text": "dddd"}},
            {"index": 3, "relevance_score": 3.0, "document": {"text": "ccc"}},
        ],
    }
    tei = requests.post(
        url + "/v1/rerank", json={"model": "ranker", "query": "q", "texts": ["x", "yy"]}, timeout=30
    ).json()
    assert tei == [{"index": 1, "score": 2.0}, {"index": 0, "score": 1.0}]
    refused = {"model": "embedder", "query": "q", "documents": ["d"]}
    native = requests.post(url + "/api/rerank", json=refused, timeout=30)
    assert (native.status_code, native.json()) == (
        400,
        {"error": '"embedder" does not support rerank'},
    )
    v1 = requests.post(url + "/v1/rerank", json=refused, timeout=30)
    assert (v1.status_code, v1.json()) == (
        400,
        {
            "error": {
                "code": 400,
                "message": '"embedder" does not support rerank',
                "type": "invalid_request_error",
            }
        },
    )
    assert scheduler.held == 0
