"""Tokenize and detokenize over real HTTP: the ids are the ones the engine runs, proven against
what ``/api/generate`` and ``/api/chat`` report for the same prompt (``prompt_eval_count``, and
the ``context`` a generate returns), on a tiny model and on SmolLM2; bad requests get 4xx."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from ollamakit.inference.tokenize import MAX_TEXT, MAX_TOKENS
from ollamakit.testing.encoders import tiny_nomic_bert
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.smollm2 import TOOLS_TEMPLATE, create_smollm2

ONCE = {"temperature": 0, "num_predict": 1}
PLAIN = "{{ .Prompt }}"  # a template that adds nothing: the prompt's ids as a raw prompt's
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Héllo <|im_start|> there"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "What is the weather in Zürich?"},
]


def _create(client: httpx.Client, name: str, path, **fields) -> None:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    reply = client.post(
        "/api/create",
        json={"model": name, "files": {path.name: digest}, "stream": False, **fields},
    )
    assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenize")
    (root / "models").mkdir()
    tiny = tiny_llama(
        root / "tiny.gguf",
        n_layers=1,
        n_embd=32,
        n_heads=2,
        n_kv_heads=1,
        n_ff=64,
        context_length=2048,
        # BOS (<|endoftext|>) first, as llama models ask
        extra_metadata={"tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.bos_token_id": 0},
    )
    proc = ServerProcess(root / "models").start()
    try:
        with httpx.Client(base_url=proc.url, timeout=120) as client:
            _create(client, "tiny", tiny, template=TOOLS_TEMPLATE)
            _create(client, "nomic", tiny_nomic_bert(root / "nomic.gguf"))
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def ok(client: httpx.Client, path: str, body: dict) -> dict:
    reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def ids(client, model: str, **body) -> list[int]:
    return ok(client, "/api/tokenize", {"model": model, **body})["tokens"]


def check_text_ids(client, model: str, text: str) -> list[int]:
    """The ids tokenize gives a text are those generate runs for it as a raw prompt."""
    tokens = ids(client, model, content=text)
    raw = ok(
        client,
        "/api/generate",
        {"model": model, "prompt": text, "raw": True, "stream": False, "options": ONCE},
    )
    assert raw["prompt_eval_count"] == len(tokens)
    # Raw mode returns no context; a template that adds nothing gives the same prompt with one.
    plain = ok(
        client,
        "/api/generate",
        {"model": model, "prompt": text, "template": PLAIN, "stream": False, "options": ONCE},
    )
    assert plain["context"][: plain["prompt_eval_count"]] == tokens
    assert ids(client, model, prompt=text) == tokens
    return tokens


def check_chat_ids(client, model: str) -> list[int]:
    """The ids of a rendered conversation are those chat runs; a single user message's are
    those generate runs through the template (and returns as its context)."""
    tokens = ids(client, model, messages=CONVERSATION, tools=TOOLS)
    chat = {"model": model, "messages": CONVERSATION, "tools": TOOLS, "stream": False}
    answered = ok(client, "/api/chat", {**chat, "options": ONCE})
    assert answered["prompt_eval_count"] == len(tokens)
    rendered = ok(client, "/api/chat", {**chat, "_debug_render_only": True})
    text = rendered["_debug_info"]["rendered_template"]
    assert ids(client, model, content=text) == tokens
    question = CONVERSATION[-1]["content"]
    single = ids(client, model, messages=[{"role": "user", "content": question}])
    generated = ok(
        client,
        "/api/generate",
        {"model": model, "prompt": question, "stream": False, "options": ONCE},
    )
    assert generated["context"][: generated["prompt_eval_count"]] == single
    return tokens


def test_text_ids_are_the_engines(http):
    tokens = check_text_ids(http, "tiny", "Héllo <|im_start|>world")
    assert tokens[0] == 0  # the model asks for BOS
    assert 1 in tokens  # <|im_start|> read as its special token
    without = ids(http, "tiny", content="Héllo <|im_start|>world", add_special=False)
    assert without == tokens[1:]
    literal = ids(http, "tiny", content="<|im_start|>", add_special=False, parse_special=False)
    assert literal == [3 + b for b in b"<|im_start|>"]  # bytes follow the 3 specials


def test_chat_ids_are_the_engines(http):
    tokens = check_chat_ids(http, "tiny")
    assert len(tokens) > 40


def test_the_history_that_fits_the_context(http):
    """With a small ``num_ctx`` chat leaves out the oldest history; tokenize leaves out the same."""
    long = [
        {"role": "user", "content": "a" * 150},
        {"role": "assistant", "content": "b" * 150},
        {"role": "user", "content": "Hi?"},
    ]
    small = {"num_ctx": 256}
    tokens = ids(http, "tiny", messages=long, options=small)
    everything = ids(http, "tiny", messages=long)
    assert len(tokens) < 256 < len(everything)
    answered = ok(
        http,
        "/api/chat",
        {"model": "tiny", "messages": long, "stream": False, "options": {**ONCE, **small}},
    )
    assert answered["prompt_eval_count"] == len(tokens)


def test_detokenize_reads_the_ids_back(http):
    rendered = ok(
        http,
        "/api/chat",
        {"model": "tiny", "messages": CONVERSATION, "stream": False, "_debug_render_only": True},
    )["_debug_info"]["rendered_template"]
    tokens = ids(http, "tiny", content=rendered, add_special=False)
    back = ok(http, "/api/detokenize", {"model": "tiny", "tokens": tokens})
    assert back == {**back, "model": "tiny", "content": rendered}
    plain = ok(http, "/api/detokenize", {"model": "tiny", "tokens": tokens, "special": False})
    assert plain["content"] == rendered.replace("<|im_start|>", "").replace("<|im_end|>", "")


def test_pieces_as_llama_server_gives_them(http):
    reply = ok(
        http, "/api/tokenize", {"model": "tiny", "content": "aé<|im_end|>", "with_pieces": True}
    )
    # the tiny vocabulary has no merges: é is two byte tokens, neither of them whole UTF-8
    assert reply["tokens"] == [
        {"id": 0, "piece": "<|endoftext|>"},
        {"id": 3 + ord("a"), "piece": "a"},
        {"id": 3 + 0xC3, "piece": [0xC3]},
        {"id": 3 + 0xA9, "piece": [0xA9]},
        {"id": 2, "piece": "<|im_end|>"},
    ]


def test_llama_server_paths(http):
    body = {"model": "tiny", "content": "Hello", "add_special": False}
    assert ok(http, "/tokenize", body)["tokens"] == ids(http, **body)
    tokens = [3 + b for b in b"Hello"]
    assert ok(http, "/detokenize", {"model": "tiny", "tokens": tokens})["content"] == "Hello"


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/api/tokenize", {"model": "absent", "content": "x"}, 404, "model 'absent' not found"),
        ("/api/detokenize", {"model": "absent", "tokens": [1]}, 404, "model 'absent' not found"),
        ("/api/tokenize", {"content": "x"}, 400, "model is required"),
        ("/api/tokenize", {"model": "nomic", "content": "x"}, 400, "does not support tokenize"),
        ("/api/detokenize", {"model": "nomic", "tokens": [1]}, 400, "does not support tokenize"),
        ("/api/tokenize", {"model": "tiny"}, 400, "give either"),
        (
            "/api/tokenize",
            {"model": "tiny", "content": "x", "messages": [{"role": "user", "content": "y"}]},
            400,
            "give either",
        ),
        ("/api/tokenize", {"model": "tiny", "content": 5}, 400, "field content"),
        (
            "/api/tokenize",
            {"model": "tiny", "content": "x", "add_special": "no"},
            400,
            "add_special",
        ),
        (
            "/api/tokenize",
            {"model": "tiny", "messages": [{"role": "user", "content": "y", "images": ["AAAA"]}]},
            400,
            "does not take images",
        ),
        ("/api/tokenize", {"model": "tiny", "content": "x" * (MAX_TEXT + 1)}, 400, "more than"),
        ("/api/detokenize", {"model": "tiny", "tokens": "1 2"}, 400, "array of token ids"),
        ("/api/detokenize", {"model": "tiny", "tokens": [1, True]}, 400, "array of token ids"),
        (
            "/api/detokenize",
            {"model": "tiny", "tokens": [1, 259]},
            400,
            "token id 259 is out of range",
        ),
        ("/api/detokenize", {"model": "tiny", "tokens": [-1]}, 400, "out of range"),
        (
            "/api/detokenize",
            {"model": "tiny", "tokens": [1] * (MAX_TOKENS + 1)},
            400,
            "too many tokens",
        ),
    ],
)
def test_bad_requests(http, path, body, status, words):
    reply = http.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]
    assert "Traceback" not in reply.text


@pytest.mark.real_model
def test_smollm2_ids_are_the_engines(tmp_path):
    """SmolLM2's real BPE (merges, its pre-tokenizer, ChatML's special tokens): the ids
    tokenize gives are the ones generate and chat run."""
    (tmp_path / "models").mkdir()
    proc = ServerProcess(tmp_path / "models").start()
    try:
        create_smollm2(proc.url, ["smol"])
        with httpx.Client(base_url=proc.url, timeout=300) as client:
            tokens = check_text_ids(client, "smol", "Héllo, wörld!  It's 2024 <|im_end|>\n\tOK")
            assert len(tokens) < len("Héllo, wörld!  It's 2024 <|im_end|>\n\tOK") - 10  # merged
            assert 2 in tokens  # <|im_end|>
            chat = check_chat_ids(client, "smol")
            back = ok(client, "/api/detokenize", {"model": "smol", "tokens": chat})["content"]
            assert back.startswith("<|im_start|>system\nYou answer briefly.")
            assert back.endswith("<|im_start|>assistant\n")
    finally:
        proc.stop()
