"""The request-body fuzz target: hostile bodies for generate, chat, embed, rerank, tokenize,
detokenize, create, show, copy, delete and blobs, and for the OpenAI and Anthropic routes (chat
completions, completions, embeddings, responses, messages), sent through the Falcon app
in-process (no sockets) to a fake model, so a case costs about a millisecond.

A case is ``(method, path, body bytes)``. The body is mostly a JSON object of the endpoint's
own fields, each either of the right type or any JSON value, plus stray keys; sometimes raw
bytes that are not JSON at all (deep nesting, huge numbers, lone surrogates, truncation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from hypothesis import strategies as st

from fuzz_targets import Finding, Target, _scratch, brief, json_value
from ollamakit.errors import INTERNAL_ERROR, OllamaError

CHAT_TEMPLATE = "{{ range .Messages }}<|start|>{{ .Role }}\n{{ .Content }}<|end|>\n{{ end }}<|start|>assistant\n"

MODEL_NAMES = [
    "fake",
    "fake:latest",
    "made",
    "missing",
    "",
    "FAKE",
    "fake:",
    ":",
    "a/b",
    "r.example/ns/m:t",
    "x" * 300,
    "fake@sha256:" + "0" * 64,
]
models = st.one_of(st.sampled_from(MODEL_NAMES), st.text(max_size=20))
# Names for the target of create and copy, and the parent of create: never a registry reference
# (host/namespace/model), which create would try to pull over the network.
local_names = st.one_of(
    st.sampled_from(["made", "made:v2", "copy", "fake", "", "bad name", "x" * 300]),
    st.text(max_size=16).filter(lambda s: s.count("/") < 2 and "://" not in s),
)
OPTION_NAMES = [
    "temperature",
    "num_ctx",
    "num_predict",
    "top_k",
    "top_p",
    "min_p",
    "seed",
    "stop",
    "num_keep",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "num_batch",
    "typical_p",
    "mirostat",
    "num_thread",
    "penalize_newline",
    "use_mmap",
    "num_gpu",
    "unknown_option",
]
numbers = st.one_of(
    st.integers(-3, 64),
    st.sampled_from([-1, -2, 1 << 31, 1 << 63, 1 << 64, 10**30]),
    st.floats(-3, 5),
    st.floats(),
)
options = st.one_of(
    st.dictionaries(st.sampled_from(OPTION_NAMES), st.one_of(numbers, json_value), max_size=4),
    json_value,
)
text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["Q: one\nA:", "<|start|>user\nhi<|end|>", "{{ .Prompt }}"]),
)
formats = st.one_of(
    st.sampled_from(["json", "", "yaml", None]),
    json_value,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["object", "string", "integer", "array", "x"])},
        optional={
            "properties": json_value,
            "$ref": st.text(max_size=8),
            "items": json_value,
            "enum": json_value,
        },
    ),
)
keep_alive = st.one_of(
    st.sampled_from(["5m", "0", "-1", "1h30m", "abc", "", "1e400s"]), numbers, json_value
)
message = st.fixed_dictionaries(
    {
        "role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool"]), json_value),
        "content": st.one_of(text, json_value),
    },
    optional={
        "images": json_value,
        "thinking": json_value,
        "tool_calls": json_value,
        "tool_name": json_value,
    },
)
digests = st.one_of(
    st.sampled_from(
        [
            "sha256:" + "0" * 64,
            "sha256:" + "a" * 63,
            "sha256:" + "A" * 64,
            "",
            "sha256:" + "0" * 64 + "\n",
            "../../etc/passwd",
            "sha256-" + "0" * 64,
        ]
    ),
    st.text(max_size=72),
)


def fields(blob: str) -> dict:
    """Each endpoint's fields, each of the right type or any JSON value."""
    common = {
        "model": models,
        "keep_alive": keep_alive,
        "options": options,
        "stream": st.booleans(),
        "format": formats,
        "think": st.one_of(st.booleans(), st.sampled_from(["high", "low", "x"])),
        "logprobs": st.booleans(),
        "top_logprobs": numbers,
        "truncate": st.booleans(),
        "shift": st.booleans(),
    }
    files = st.one_of(
        st.dictionaries(
            st.sampled_from(["m.gguf", "a.safetensors", "../x.gguf", "m"]),
            st.one_of(st.just(blob), digests),
            max_size=2,
        ),
        json_value,
    )
    return {
        "generate": {
            **common,
            "prompt": text,
            "suffix": text,
            "system": text,
            "template": text,
            "raw": st.booleans(),
            "context": st.one_of(st.lists(st.integers(-1, 300), max_size=8), json_value),
            "images": st.one_of(
                st.lists(st.sampled_from(["aGk=", "!!", ""]), max_size=2), json_value
            ),
        },
        "chat": {
            **common,
            "messages": st.one_of(st.lists(message, max_size=4), json_value),
            "tools": json_value,
        },
        "tokenize": {
            **common,
            "content": text,
            "prompt": text,
            "messages": st.one_of(st.lists(message, max_size=4), json_value),
            "tools": json_value,
            "add_special": st.booleans(),
            "parse_special": st.booleans(),
            "with_pieces": st.booleans(),
        },
        "detokenize": {
            "model": models,
            "keep_alive": keep_alive,
            "tokens": st.one_of(st.lists(st.integers(-2, 300), max_size=8), json_value),
            "special": st.booleans(),
        },
        "embed": {
            "model": models,
            "input": st.one_of(text, st.lists(text, max_size=6), json_value),
            "truncate": st.booleans(),
            "dimensions": numbers,
            "keep_alive": keep_alive,
            "options": options,
        },
        "embeddings": {
            "model": models,
            "prompt": text,
            "keep_alive": keep_alive,
            "options": options,
        },
        **dict.fromkeys(
            ("rerank", "v1_rerank"),
            {
                "model": models,
                "query": text,
                "documents": st.one_of(st.lists(text, max_size=4), json_value),
                "texts": st.one_of(st.lists(text, max_size=3), json_value),
                "top_n": numbers,
                "return_documents": st.one_of(st.booleans(), json_value),
                "return_text": st.booleans(),
                "truncate": st.booleans(),
                "keep_alive": keep_alive,
                "options": options,
            },
        ),
        "create": {
            "model": local_names,
            "from": local_names,
            "files": files,
            "adapters": files,
            "template": text,
            "system": text,
            "license": st.one_of(text, st.lists(text, max_size=3), json_value),
            "parameters": st.one_of(
                st.dictionaries(
                    st.sampled_from(OPTION_NAMES), st.one_of(numbers, json_value), max_size=3
                ),
                json_value,
            ),
            "messages": st.one_of(st.lists(message, max_size=3), json_value),
            "quantize": st.one_of(
                st.sampled_from(["q4_0", "Q8_0", "q4_k_m", "f16", "nope"]), json_value
            ),
            "stream": st.booleans(),
        },
        "show": {
            "model": models,
            "name": models,
            "verbose": st.booleans(),
            "system": text,
            "template": text,
            "options": options,
        },
        "copy": {"source": models, "destination": local_names},
        "delete": {"model": models, "name": models},
        **compatible_fields(),
    }


def valid_fields(blob: str) -> dict:
    """Each endpoint's fields with values a client may rightly send, for a model that exists:
    these cases get past validation and run the model, create, copy and delete for real."""
    small_text = st.text(max_size=40)
    good_options = st.fixed_dictionaries(
        {},
        optional={
            "temperature": st.floats(0, 2),
            "num_ctx": st.integers(1, 4096),
            "num_predict": st.integers(-2, 48),
            "top_k": st.integers(0, 100),
            "top_p": st.floats(0, 1),
            "seed": st.integers(-(1 << 31), 1 << 31),
            "stop": st.lists(small_text, max_size=3),
            "num_keep": st.integers(-1, 8),
            "repeat_penalty": st.floats(0, 2),
            "num_batch": st.integers(1, 512),
        },
    )
    common = {
        "keep_alive": st.sampled_from(["5m", 0, -1, "1h", 10]),
        "options": good_options,
        "stream": st.booleans(),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        "truncate": st.booleans(),
        "shift": st.booleans(),
        "think": st.sampled_from([False, None]),
        "format": st.sampled_from(
            [
                None,
                "json",
                {"type": "object"},
                {"type": "string", "maxLength": 3},
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            ]
        ),
    }
    role = st.sampled_from(["user", "system", "assistant"])
    messages = st.lists(st.fixed_dictionaries({"role": role, "content": small_text}), max_size=4)
    templates = st.sampled_from(
        ["{{ .Prompt }}", "{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}", CHAT_TEMPLATE]
    )
    return {
        "generate": {
            **common,
            "prompt": small_text,
            "system": small_text,
            "template": templates,
            "raw": st.booleans(),
            "context": st.lists(st.integers(0, 259), max_size=8),
        },
        "chat": {**common, "messages": messages},
        "tokenize": {
            "content": small_text,
            "messages": messages,
            "add_special": st.booleans(),
            "parse_special": st.booleans(),
            "with_pieces": st.booleans(),
            "keep_alive": common["keep_alive"],
            "options": good_options,
        },
        "detokenize": {
            "tokens": st.lists(st.integers(0, 259), max_size=8),
            "special": st.booleans(),
            "keep_alive": common["keep_alive"],
        },
        "embed": {
            "input": small_text | st.lists(small_text, max_size=6),
            "truncate": st.booleans(),
            "dimensions": st.integers(0, 8),
            "keep_alive": common["keep_alive"],
            "options": good_options,
        },
        "embeddings": {
            "prompt": small_text,
            "keep_alive": common["keep_alive"],
            "options": good_options,
        },
        **dict.fromkeys(
            ("rerank", "v1_rerank"),
            {
                "query": small_text,
                "documents": st.lists(
                    small_text | st.fixed_dictionaries({"text": small_text}), min_size=1, max_size=4
                ),
                "top_n": st.integers(1, 5),
                "return_documents": st.booleans(),
                "keep_alive": common["keep_alive"],
            },
        ),
        "create": {
            "model": st.sampled_from(["made", "made:v2", "copy"]),
            "from": st.sampled_from(["fake", "made"]),
            "files": st.just({"m.gguf": blob}),
            "template": templates,
            "system": small_text,
            "license": small_text | st.lists(small_text, max_size=3),
            "messages": messages,
            "parameters": st.fixed_dictionaries(
                {},
                optional={
                    "temperature": st.floats(0, 2),
                    "num_ctx": st.integers(1, 4096),
                    "stop": st.lists(small_text, max_size=2),
                },
            ),
            "quantize": st.sampled_from(["q4_0", "q8_0"]),
            "stream": st.booleans(),
        },
        "show": {"verbose": st.booleans()},
        "copy": {"destination": st.sampled_from(["copy", "made:v2", "fake"])},
        "delete": {},
        **valid_compatible_fields(),
    }


# -- the OpenAI and Anthropic routes ----------------------------------------------------------

image_url = st.sampled_from(
    ["data:image/png;base64,aGk=", "data:image/png;base64,!!", "data:;base64,", "https://x/y.png"]
)
openai_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text | json_value}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": image_url})}
    ),
    json_value,
)
openai_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool", "developer"]) | json_value,
        "content": text | st.lists(openai_part, max_size=3) | json_value,
    },
    optional={"tool_calls": json_value, "tool_call_id": json_value, "reasoning": json_value},
)
function_tool = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search", "namespace"]) | json_value},
    optional={
        "name": st.sampled_from(["f", "web_search", ""]) | json_value,
        "function": json_value,
        "parameters": json_value,
        "tools": json_value,
    },
)
response_item = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]), "content": text},
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["message", "function_call", "function_call_output", "reasoning", "web_search_call"]
            )
        },
        optional={
            "role": json_value,
            "content": json_value,
            "call_id": json_value,
            "name": json_value,
            "arguments": st.sampled_from(['{"a": 1}', "[1]", "{", ""]) | json_value,
            "output": text | json_value,
            "encrypted_content": json_value,
        },
    ),
    json_value,
)
block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text | json_value}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["image", "tool_use", "tool_result", "thinking", "x"])},
        optional={
            "source": json_value,
            "id": json_value,
            "name": json_value,
            "input": json_value,
            "content": json_value,
            "tool_use_id": json_value,
            "thinking": json_value,
        },
    ),
    json_value,
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]) | json_value,
        "content": text | st.lists(block, max_size=3) | json_value,
    }
)


def compatible_fields() -> dict:
    """The fields of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses and
    /v1/messages, each of the right type or any JSON value."""
    sampling = {
        "temperature": numbers,
        "top_p": numbers,
        "seed": numbers,
        "stop": st.one_of(text, st.lists(text, max_size=2), json_value),
        "frequency_penalty": numbers,
        "presence_penalty": numbers,
    }
    return {
        "v1_chat": {
            "model": models,
            "messages": st.one_of(st.lists(openai_message, max_size=4), json_value),
            "stream": st.booleans(),
            "stream_options": json_value,
            "max_tokens": numbers,
            "max_completion_tokens": numbers,
            "response_format": json_value,
            "tools": st.one_of(st.lists(function_tool, max_size=2), json_value),
            "tool_choice": json_value,
            "reasoning_effort": st.sampled_from(["low", "none", "x", ""]) | json_value,
            "reasoning": json_value,
            "logprobs": st.booleans(),
            "top_logprobs": numbers,
            **sampling,
        },
        "v1_completions": {
            "model": models,
            "prompt": text,
            "suffix": text,
            "stream": st.booleans(),
            "max_tokens": numbers,
            "echo": st.booleans(),
            "logprobs": numbers,
            **sampling,
        },
        "v1_embeddings": {
            "model": models,
            "input": st.one_of(text, st.lists(text, max_size=4), json_value),
            "dimensions": numbers,
            "encoding_format": st.sampled_from(["float", "base64", "x"]),
        },
        "v1_responses": {
            "model": models,
            "input": st.one_of(text, st.lists(response_item, max_size=4), json_value),
            "instructions": text,
            "max_output_tokens": numbers,
            "temperature": numbers,
            "top_p": numbers,
            "truncation": st.sampled_from(["auto", "disabled"]),
            "stream": st.booleans(),
            "reasoning": st.fixed_dictionaries(
                {}, optional={"effort": st.sampled_from(["low", "none", "x"]), "summary": text}
            ),
            "text": st.fixed_dictionaries({}, optional={"format": json_value}),
            "tools": st.one_of(st.lists(function_tool, max_size=2), json_value),
        },
        "v1_messages": {
            "model": models,
            "max_tokens": numbers,
            "messages": st.one_of(st.lists(anthropic_message, max_size=4), json_value),
            "system": st.one_of(text, st.lists(block, max_size=2), json_value),
            "stream": st.booleans(),
            "tools": json_value,
            "stop_sequences": st.one_of(st.lists(text, max_size=2), json_value),
            "temperature": numbers,
            "top_p": numbers,
            "top_k": numbers,
            "thinking": json_value,
            "output_config": json_value,
        },
    }


def valid_compatible_fields() -> dict:
    """Those fields with values a client may rightly send (the model is added by ``json_cases``)."""
    small_text = st.text(max_size=40)
    chat_message = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant"]), "content": small_text}
    )
    user_message = st.fixed_dictionaries({"role": st.just("user"), "content": small_text})
    return {
        "v1_chat": {
            "messages": st.lists(chat_message, min_size=1, max_size=3),
            "stream": st.booleans(),
            "max_tokens": st.integers(1, 32),
            "temperature": st.floats(0, 2),
            "seed": st.integers(0, 100),
            "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        },
        "v1_completions": {
            "prompt": small_text,
            "stream": st.booleans(),
            "max_tokens": st.integers(1, 32),
            "temperature": st.floats(0, 2),
        },
        "v1_embeddings": {"input": small_text | st.lists(small_text, min_size=1, max_size=3)},
        "v1_responses": {
            "input": small_text | st.lists(user_message, min_size=1, max_size=2),
            "instructions": small_text,
            "stream": st.booleans(),
            "max_output_tokens": st.integers(1, 32),
            "temperature": st.floats(0, 2),
        },
        "v1_messages": {
            "max_tokens": st.integers(1, 32),
            "messages": st.lists(user_message, min_size=1, max_size=2),
            "system": small_text,
            "stream": st.booleans(),
            "temperature": st.floats(0, 1),
        },
    }


ROUTES = {
    "generate": ("POST", "/api/generate"),
    "chat": ("POST", "/api/chat"),
    "embed": ("POST", "/api/embed"),
    "embeddings": ("POST", "/api/embeddings"),
    "create": ("POST", "/api/create"),
    "show": ("POST", "/api/show"),
    "copy": ("POST", "/api/copy"),
    "delete": ("DELETE", "/api/delete"),
    "rerank": ("POST", "/api/rerank"),
    "v1_rerank": ("POST", "/v1/rerank"),
    "tokenize": ("POST", "/api/tokenize"),
    "detokenize": ("POST", "/api/detokenize"),
    "v1_chat": ("POST", "/v1/chat/completions"),
    "v1_completions": ("POST", "/v1/completions"),
    "v1_embeddings": ("POST", "/v1/embeddings"),
    "v1_responses": ("POST", "/v1/responses"),
    "v1_messages": ("POST", "/v1/messages"),
}
# Bodies that are not a well-formed object: each once broke a JSON endpoint somewhere.
RAW_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"1",
    b'"x"',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"9" * 5001,
    b'{"model": "fake", "prompt": "\\ud800"}',
    b'{"model": "fake", "prompt": "\xff\xfe"}',
    b'{"model": "fake", "model": "x"}',
    b'{"model": 1e999}',
    b'{"options": {"num_ctx": ' + b"9" * 400 + b"}}",
]


def json_cases(blob: str):
    """Per endpoint, an object of its own fields and sometimes stray keys: two times in three
    each field of its type for a model that exists (so the case reaches the engine), with at
    most one field of any JSON value; else any field of any value. One in sixteen cut short."""
    table, valid = fields(blob), valid_fields(blob)
    existing = st.sampled_from(["fake", "fake", "fake:latest", "made", "copy"])
    typed = {
        endpoint: st.fixed_dictionaries(
            {k: existing for k in ("model", "source") if k in table[endpoint] and k not in spec},
            optional=spec,
        )
        for endpoint, spec in valid.items()
    }
    wild = {
        endpoint: st.fixed_dictionaries({}, optional={k: v | json_value for k, v in spec.items()})
        for endpoint, spec in table.items()
    }
    keys = {endpoint: st.sampled_from(sorted(spec)) for endpoint, spec in table.items()}
    stray = st.dictionaries(st.text(max_size=6), json_value, max_size=2)
    endpoints, modes, cut = st.sampled_from(sorted(ROUTES)), st.integers(0, 5), st.integers(0, 15)

    @st.composite
    def case(draw):
        endpoint, mode = draw(endpoints), draw(modes)
        if mode < 4:
            body = draw(typed[endpoint])
            if mode == 3:
                body[draw(keys[endpoint])] = draw(json_value)
        else:
            body = draw(wild[endpoint])
            body.update(draw(stray))
        raw = json.dumps(body).encode()
        if draw(cut) == 0:
            raw = raw[: draw(st.integers(0, len(raw)))]
        return (*ROUTES[endpoint], raw)

    return case()


raw_routes = st.sampled_from(sorted(ROUTES))
raw_bodies = st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=64))


@st.composite
def raw_case(draw):
    method, path = ROUTES[draw(raw_routes)]
    return method, path, draw(raw_bodies)


def blob_cases(blob_bytes: bytes):
    """Uploads and lookups of blobs under right, wrong and malformed digests."""
    bodies = st.one_of(st.binary(max_size=64), st.just(blob_bytes))
    methods = st.sampled_from(["POST", "HEAD", "GET"])

    @st.composite
    def case(draw):
        body = draw(bodies)
        digest = (
            "sha256:" + hashlib.sha256(body).hexdigest() if draw(st.booleans()) else draw(digests)
        )
        return draw(methods), "/api/blobs/" + quote(digest, safe=":"), body

    return case()


class RequestTarget(Target):
    """The whole app over a fake model named ``fake`` (put back after any case that deletes or
    replaces it) and a tiny real GGUF blob that create may use (its models run on the engine)."""

    name = "requests"

    def __init__(self):
        super().__init__()
        from falcon.testing import TestClient

        from ollamakit.config import Settings
        from ollamakit.testing.gguf_factory import tiny_llama
        from ollamakit.web import create_app
        from ollamakit_scheduler.fixtures import SCRIPT
        from ollamakit_scheduler.testing import fake_kernel

        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-api-", dir=_scratch()))
        models_dir = self.folder / "models"
        models_dir.mkdir()
        # keep_alive 0 by default: models unload after each request, so loads are fuzzed too
        self.kernel, _ = fake_kernel(
            replace(Settings(models_dir=models_dir), max_queue=8, keep_alive=0.0, max_predict=256)
        )  # a long answer is no finding
        self.client = TestClient(create_app(self.kernel), headers={"Host": "localhost"})
        self.script = SCRIPT
        self.fake_digest = self._store_fake()
        blob_bytes = tiny_llama(self.folder / "tiny.gguf").read_bytes()
        self.blob, _ = self.kernel.store.add_bytes(blob_bytes)
        bodies = json_cases(self.blob)
        self.strategy = st.one_of(bodies, bodies, bodies, raw_case(), blob_cases(blob_bytes[:2048]))
        self.errors: list[str] = []
        self._handler = _Collect(self.errors)
        logging.getLogger("ollamakit").addHandler(self._handler)

    def _store_fake(self) -> str:
        from ollamakit_scheduler.testing import store_fake_model

        return store_fake_model(self.kernel, "fake", self.script, template=CHAT_TEMPLATE).digest

    def check(self, case) -> Finding | None:
        self.errors.clear()
        finding = super().check(case)
        if finding is not None and finding.kind in ("5xx", "exception") and self.errors:
            finding.detail += " | log: " + self.errors[-1][-400:]
        stored = self.kernel.store.get("fake")
        if stored is None or stored.digest != self.fake_digest:
            self.fake_digest = self._store_fake()
        return finding

    def run(self, case) -> list[str]:
        method, path, body = case
        result = self.client.simulate_request(
            method,
            path,
            body=body,
            headers={"Content-Type": "application/json", "Host": "localhost"},
        )
        if result.status_code >= 500:
            raise _ServerError(result.text[:300], result.status_code)
        messages = []
        lines = result.text.splitlines() if result.status_code < 400 else [result.text]
        for line in lines:
            if '"error"' not in line:
                continue
            try:  # a native line, or an OpenAI or Anthropic event's data
                error = json.loads(line.removeprefix("data: ")).get("error")
            except (ValueError, AttributeError):
                continue
            if isinstance(error, dict):  # the OpenAI and Anthropic envelopes
                error = error.get("message")
            if isinstance(error, str):
                if INTERNAL_ERROR in error:  # an unexpected exception after the status line
                    raise _ServerError("in the stream: " + error, 500)
                messages.append(error)
        if result.status_code >= 400 and not messages and method != "HEAD" and result.text:
            messages.append(result.text)
        return messages

    def close(self):
        logging.getLogger("ollamakit").removeHandler(self._handler)
        self.kernel.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class _ServerError(OllamaError):
    """A 5xx answer, reported as the target's ``5xx`` finding."""


class _Collect(logging.Handler):
    """The server log's errors, with their tracebacks: what a finding reports."""

    def __init__(self, into: list[str]):
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record):
        self.into.append(self.format(record))


def describe(case) -> str:
    method, path, body = case
    return f"{method} {path} {brief(body)}"
