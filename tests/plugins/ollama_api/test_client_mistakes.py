"""Careless and hostile request bodies: each is a 400 (or a 404) in the API's own words, with no
exception text, file path or traceback in the reply, and the server goes on answering."""

from __future__ import annotations

import logging
import socket

import pytest

from ollamakit_scheduler.fixtures import fake, make_fake  # noqa: F401 (fixtures)

from model_store_helpers import snapshot

LEAKS = (
    "Traceback",
    "Error:",
    "Errno",
    ".py",
    "/tmp",
    "codec",
    "recursion",
    "sys.set_int_max_str_digits",
)


def post_raw(fake, path: str, raw: bytes):
    return fake.client.simulate_post(path, body=raw, headers={"Content-Type": "application/json"})


def error_of(response) -> str:
    error = response.json["error"]
    return error["message"] if isinstance(error, dict) else error  # /v1 wraps it in an envelope


def assert_clean(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert error_of(response) == message
    assert not any(leak in response.text for leak in LEAKS), response.text


def still_answers(fake) -> None:
    reply = fake.client.simulate_post(
        "/api/generate",
        json={
            "model": "fake",
            "prompt": "Q: one\nA:",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 2},
        },
    )
    assert reply.status_code == 200 and reply.json["eval_count"] == 2


ROUTES = [
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/create",
    "/api/show",
    "/v1/chat/completions",
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "raw, message",
    [
        (b"[" * 100_000, "invalid JSON: exceeded max depth"),
        (
            b'{"model": "fake", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "invalid JSON: exceeded max depth",
        ),
        (
            b'{"model": "fake", "prompt": "\\ud800"}',
            "invalid JSON: string escape \\ud800 is half of a surrogate pair",
        ),
        (
            b'{"model": "fake", "messages": [{"role": "user", "content": "a\\udfffb"}]}',
            "invalid JSON: string escape \\udfff is half of a surrogate pair",
        ),
        (
            b'{"model": "fake", "options": {"seed": ' + b"7" * 5001 + b"}}",
            "invalid JSON: a number has too many digits",
        ),
        (
            b'{"model": "fake", "options": {"temperature": NaN}}',
            "invalid character 'N' looking for beginning of value",
        ),
        (
            b'{"model": "fake", "options": {"temperature": -Infinity}}',
            "invalid character '-' looking for beginning of value",
        ),
    ],
    ids=[
        "deep",
        "deep_inside",
        "surrogate",
        "surrogate_in_message",
        "5001_digits",
        "nan",
        "infinity",
    ],
)
def test_malformed_json_is_a_clean_400(fake, path, raw, message):
    assert_clean(post_raw(fake, path, raw), 400, message)
    still_answers(fake)


def test_a_surrogate_pair_is_text(fake):
    reply = fake.client.simulate_post(
        "/api/generate", body=b'{"model": "fake", "prompt": "\\ud83d\\ude00", "stream": false}'
    )
    assert reply.status_code == 200


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/generate", {"prompt": "Q: one\nA:"}),
        ("/api/chat", {"messages": [{"role": "user", "content": "Q: one\nA:"}]}),
    ],
)
@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"format": "yaml"},
            'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object',
        ),
        (
            {"format": {"$ref": "#"}},
            "format schema cannot be enforced: no finite value satisfies it (a $ref loop with no way out)",
        ),
        (
            {"format": {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}},
            "format schema cannot be enforced: no finite value satisfies it (a $ref loop with no way out)",
        ),
        (
            {
                "format": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#"}},
                    "required": ["next"],
                }
            },
            "format schema cannot be enforced: no finite value satisfies it (a $ref loop with no way out)",
        ),
        ({"options": {"temperature": "hot"}}, 'option "temperature" must be of type float32'),
        ({"options": {"num_ctx": "4096"}}, 'option "num_ctx" must be of type integer'),
        ({"options": {"num_predict": [4]}}, 'option "num_predict" must be of type integer'),
        ({"options": {"seed": 2**64}}, 'option "seed" must be of type integer'),
        ({"options": {"seed": -(2**63) - 1}}, 'option "seed" must be of type integer'),
        ({"options": {"top_p": 10**400}}, 'option "top_p" must be of type float32'),
        ({"options": {"use_mmap": "yes"}}, 'option "use_mmap" must be of type boolean'),
        ({"options": {"num_ctx": -5}}, 'invalid option "num_ctx": must be at least 1 (got -5)'),
    ],
    ids=[
        "yaml",
        "self_ref",
        "ref_loop",
        "requires_itself",
        "temperature_hot",
        "num_ctx_string",
        "num_predict_list",
        "seed_2_64",
        "seed_below_int64",
        "huge_float",
        "bool_string",
        "num_ctx_negative",
    ],
)
def test_bad_requests_are_clean_400s(fake, path, body, extra, message):
    for stream in (True, False):
        assert_clean(
            fake.client.simulate_post(
                path, json={"model": "fake", **body, **extra, "stream": stream}
            ),
            400,
            message,
        )
    still_answers(fake)


def test_the_largest_int64_seed_is_a_seed(fake):
    reply = fake.client.simulate_post(
        "/api/generate",
        json={
            "model": "fake",
            "prompt": "Q: one\nA:",
            "stream": False,
            "options": {"seed": 2**63 - 1, "num_predict": 2},
        },
    )
    assert reply.status_code == 200


def test_openai_options_of_the_wrong_type(fake):
    reply = fake.client.simulate_post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": [{"role": "user", "content": "x"}], "seed": 2**64},
    )
    assert reply.status_code == 400 and "seed" in error_of(reply)
    assert not any(leak in reply.text for leak in LEAKS)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a host name fails the test."""
    looked_up = []

    def refuse(host, *args, **kwargs):
        looked_up.append(host)
        raise AssertionError(f"looked up {host}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return looked_up


@pytest.mark.parametrize("name", ["nosuchmodel", "nosuchmodel:7b", "someone/nosuchmodel"])
def test_create_from_an_unknown_local_name_is_a_404_offline(fake, no_network, name):
    models = fake.kernel.settings.models_dir
    before = snapshot(models)
    for stream in (True, False):
        reply = fake.client.simulate_post(
            "/api/create", json={"model": "mine", "from": name, "stream": stream}
        )
        assert_clean(reply, 404, f"model '{name}' not found")
    assert no_network == []
    assert snapshot(models) == before


def test_create_from_a_registry_reference_still_pulls(fake, monkeypatch):
    import ollamakit_registry.pull

    pulled = []

    def fake_pull(kernel, name):
        pulled.append(name.display_shortest())
        yield {"status": "pulling manifest"}

    monkeypatch.setattr(ollamakit_registry.pull, "pull_model", fake_pull)
    for name in ("example.com/library/base", "http://example.com/library/base:1"):
        reply = fake.client.simulate_post(
            "/api/create", json={"model": "mine", "from": name, "stream": False}
        )
        assert reply.status_code == 404  # the stand-in pull fetched nothing
    assert pulled == ["example.com/library/base:latest", "example.com/library/base:1"]


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"num_ctx": -5}, 'invalid value for parameter "num_ctx": must be at least 1 (got -5)'),
        ({"num_ctx": "0"}, 'invalid value for parameter "num_ctx": must be at least 1 (got "0")'),
        ({"num_batch": 0}, 'invalid value for parameter "num_batch": must be at least 1 (got 0)'),
        (
            {"top_p": 1.5},
            'invalid value for parameter "top_p": must be between 0.0 and 1.0 (got 1.5)',
        ),
        (
            {"temperature": -1},
            'invalid value for parameter "temperature": must be at least 0.0 (got -1)',
        ),
        ({"top_k": -1}, 'invalid value for parameter "top_k": must be at least 0 (got -1)'),
    ],
)
def test_create_refuses_parameters_no_request_could_use(fake, parameters, message):
    models = fake.kernel.settings.models_dir
    before = snapshot(models)
    reply = fake.client.simulate_post(
        "/api/create", json={"model": "mine", "from": "fake", "parameters": parameters}
    )
    assert_clean(reply, 400, message)
    assert snapshot(models) == before


def test_create_keeps_sensible_parameters(fake):
    reply = fake.client.simulate_post(
        "/api/create",
        json={
            "model": "mine",
            "from": "fake",
            "stream": False,
            "parameters": {
                "num_ctx": 512,
                "num_keep": -1,
                "repeat_last_n": -1,
                "top_p": 1,
                "num_predict": -2,
            },
        },
    )
    assert reply.status_code == 200, reply.text


def test_an_unexpected_error_is_logged_not_shown(fake, monkeypatch, caplog):
    import importlib

    generate = importlib.import_module(
        "ollamakit.inference.generate"
    )  # the module, not its function

    def broken(*args, **kwargs):
        raise OSError(2, "No such file or directory", "/secret/models/blobs/sha256-abc")

    monkeypatch.setattr(generate, "merged", broken)
    with caplog.at_level(logging.ERROR):
        reply = fake.client.simulate_post("/api/generate", json={"model": "fake", "prompt": "x"})
    assert reply.status_code == 500
    assert reply.json == {"error": "internal server error (the server log has the details)"}
    assert "/secret/models/blobs/sha256-abc" in caplog.text
