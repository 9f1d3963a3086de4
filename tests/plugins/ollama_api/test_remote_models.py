"""Remote stubs, as Ollama 0.33 makes and runs them (server/create.go ``remoteURL`` and the
remote branch of CreateHandler; server/routes.go GenerateHandler, ChatHandler, ShowHandler,
GetModelInfo): created ``from`` a model on another server, shown and listed from their config,
and run by sending chat and generate on to that server. The other server is a second real
ollamakit, and both are spoken to over real HTTP."""

from __future__ import annotations

import json
import socket
import time

import ollama
import openai
import pytest
import requests

from ollamakit.cloud import remote_url
from ollamakit.errors import BadRequest
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

SCRIPT = "Q: one\nA: the first answer.\nQ: two\nA: the second answer.\n"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ollama.com", "https://ollama.com:443"),
        ("http://ollama.com", "https://ollama.com:443"),
        ("https://ollama.com", "https://ollama.com:11434"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("gpu-box", "http://gpu-box:11434"),
        ("/v1/../base/", "http://localhost:11434/base"),
        ("https://h:1/a/b/", "https://h:1/a/b"),
        ("http://h/", "http://h:11434"),
        ("http://[::1]:5", "http://[::1]:5"),
    ],
)
def test_remote_hosts_are_stored_as_ollama_stores_them(raw, stored):
    assert remote_url(raw) == stored


@pytest.mark.parametrize("raw", ["http://[::1", "http://a b", "http://h:port"])
def test_a_remote_host_that_does_not_parse_is_a_bad_remote(raw):
    with pytest.raises(BadRequest, match="^bad remote$"):
        remote_url(raw)


def _create(client, **body):
    return client.simulate_post("/api/create", json={"stream": False, **body})


def test_create_stores_a_stub_and_show_and_tags_describe_it(make_fake):
    """Ollama's TestCreateAndShowRemoteModel and TestCreateFromCloudSourceSuffix."""
    local = make_fake()
    info = {
        "capabilities": ["completion", "tools", "thinking"],
        "model_family": "gptoss",
        "context_length": 131072,
        "embedding_length": 2880,
        "quantization_level": "MXFP4",
        "parameter_size": "20.9B",
    }
    made = _create(
        local.client, model="test", **{"from": "bob"}, remote_host="https://ollama.com", info=info
    )
    assert made.status_code == 200, made.text
    model = local.kernel.store.get("test")
    assert model.model_layer is None
    assert model.config["remote_host"] == "https://ollama.com:11434"
    assert model.config["remote_model"] == "bob"
    shown = local.client.simulate_post("/api/show", json={"model": "test"}).json
    assert shown["details"] == {
        "parent_model": "",
        "format": "",
        "family": "gptoss",
        "families": ["gptoss"],
        "parameter_size": "20.9B",
        "quantization_level": "MXFP4",
        "context_length": 131072,
        "embedding_length": 2880,
    }
    assert shown["capabilities"] == ["completion", "tools", "thinking"]
    assert shown["model_info"] == {
        "general.architecture": "gptoss",
        "gptoss.context_length": 131072,
        "gptoss.embedding_length": 2880,
    }
    assert (shown["remote_model"], shown["remote_host"]) == ("bob", "https://ollama.com:11434")
    assert "tensors" not in shown
    keys = list(shown)
    assert keys.index("remote_model") < keys.index("model_info")

    cloud = _create(local.client, model="from-cloud", **{"from": "gpt-oss:20b:cloud"})
    assert cloud.status_code == 200, cloud.text
    shown = local.client.simulate_post("/api/show", json={"model": "from-cloud"}).json
    assert (shown["remote_host"], shown["remote_model"]) == (
        "https://ollama.com:443",
        "gpt-oss:20b",
    )
    assert shown["model_info"] == {} and "capabilities" not in shown

    listed = {m["name"]: m for m in local.client.simulate_get("/api/tags").json["models"]}
    entry = listed["test:latest"]
    assert list(entry)[:4] == ["name", "model", "remote_model", "remote_host"]
    assert entry["capabilities"] == ["completion", "tools", "thinking"]
    assert entry["details"]["context_length"] == 131072


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"remote_host": "http://[::1", "from": "bob"}, "bad remote"),
        ({"remote_host": "ollama.com", "from": "bob:cloud:local"}, "invalid model name"),
        (
            {
                "remote_host": "ollama.com",
                "from": "bob",
                "draft_files": {"d.gguf": "sha256:" + "0" * 64},
            },
            "DRAFT cannot be used with remote models",
        ),
    ],
)
def test_create_refuses_what_ollama_refuses(make_fake, body, error):
    refused = _create(make_fake().client, model="stub", **body)
    assert refused.status_code == 400 and refused.json == {"error": error}


@pytest.fixture
def remote(make_fake):
    """The other server: real HTTP, with ``big`` (it recites its script) and ``endless`` (it
    never stops, one token per 20 ms)."""
    setup = make_fake()
    setup.model("big", SCRIPT)
    setup.model("endless", SCRIPT, endless=True, step_delay=0.02)
    with setup.server() as running:
        setup.url = running.url
        yield setup


def _stub(url: str, name: str, parent: str, remote_url_: str, **body):
    made = requests.post(
        url + "/api/create",
        json={"model": name, "from": parent, "remote_host": remote_url_, "stream": False, **body},
    )
    assert made.status_code == 200, made.text


@pytest.fixture
def local(make_fake, remote):
    """This server: it may run models on 127.0.0.1 (``OLLAMA_REMOTES``)."""
    setup = make_fake(remotes=("127.0.0.1",))
    with setup.server() as running:
        setup.url = running.url
        _stub(
            running.url,
            "stub",
            "big",
            remote.url,
            system="Answer in one line.",
            parameters={"temperature": 0, "num_predict": 40},
            messages=[
                {"role": "user", "content": "Q: one"},
                {"role": "assistant", "content": "A: the first answer."},
            ],
        )
        yield setup


def _chat(url: str, model: str, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": "Q: two"}], **extra}
    return requests.post(url + "/api/chat", json={"stream": False, **body})


def test_chat_runs_on_the_remote_host_with_the_stubs_own_parts(local, remote):
    client = ollama.Client(host=local.url)
    answer = client.chat(model="stub", messages=[{"role": "user", "content": "Q: two"}])
    # What the other server answers to the conversation the stub makes of the request.
    direct = ollama.Client(host=remote.url).chat(
        model="big",
        messages=[
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "Q: one"},
            {"role": "assistant", "content": "A: the first answer."},
            {"role": "user", "content": "Q: two"},
        ],
        options={"temperature": 0, "num_predict": 40},
    )
    assert answer.message.content == direct.message.content
    assert "second answer" in answer.message.content
    assert answer.model == "stub"
    raw = _chat(local.url, "stub").json()
    assert list(raw)[:3] == ["model", "remote_model", "remote_host"]
    assert raw["remote_model"] == "big" and raw["remote_host"] == remote_url(remote.url)
    assert raw["prompt_eval_count"] == direct.prompt_eval_count

    lines = requests.post(
        local.url + "/api/chat",
        json={"model": "stub", "messages": [{"role": "user", "content": "Q: two"}]},
        stream=True,
    )
    assert lines.headers["Content-Type"].startswith("application/x-ndjson")
    chunks = [json.loads(line) for line in lines.iter_lines() if line]
    assert len(chunks) > 3 and chunks[-1]["done"] is True
    assert all(c["model"] == "stub" and c["remote_model"] == "big" for c in chunks)
    assert "".join(c["message"]["content"] for c in chunks) == direct.message.content


def test_generate_sends_the_stubs_template_and_system(local, remote):
    via_stub = ollama.Client(host=local.url).generate(model="stub", prompt="Q: two\n")
    direct = ollama.Client(host=remote.url).generate(
        model="big",
        prompt="Q: two\n",
        template="{{ .Prompt }}",  # the stub has none: Ollama sends the default
        system="Answer in one line.",
        options={"temperature": 0, "num_predict": 40},
    )
    assert via_stub.response == direct.response and "second answer" in via_stub.response
    assert via_stub.model == "stub"


def test_the_openai_layer_runs_a_stub_too(local):
    client = openai.OpenAI(base_url=local.url + "/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="stub", messages=[{"role": "user", "content": "Q: two"}], temperature=0
    )
    assert "second answer" in reply.choices[0].message.content


def test_what_stops_a_stub(local, remote, make_fake):
    url = local.url
    _stub(url, "gone", "nope", remote.url)
    missing = _chat(url, "gone")
    assert missing.status_code == 404 and missing.json() == {"error": "model 'nope' not found"}
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    _stub(url, "away", "big", f"127.0.0.1:{closed}")
    away = _chat(url, "away")
    assert away.status_code == 500
    assert away.json() == {"error": f"cannot reach remote host http://127.0.0.1:{closed}"}
    local_only = _chat(url, "stub:local")
    assert local_only.status_code == 404 and local_only.json() == {
        "error": "model 'stub:local' not found"
    }
    assert requests.post(url + "/api/show", json={"model": "stub:local"}).status_code == 404
    _stub(url, "signed", "gpt-oss:20b", "ollama.com")
    unsigned = _chat(url, "signed")
    assert unsigned.status_code == 400  # ollama.com is not in this server's OLLAMA_REMOTES

    unlisted = make_fake()  # OLLAMA_REMOTES unset: ollama.com only
    cloudless = make_fake(no_cloud=True, remotes=("127.0.0.1", "ollama.com"))
    for setup in (unlisted, cloudless):
        with setup.server() as running:
            _stub(running.url, "stub", "big", remote.url, info={"model_family": "fake"})
            _stub(running.url, "cloud", "gpt-oss:20b:cloud", "")
            refused = _chat(running.url, "stub")
            if setup is unlisted:
                assert refused.status_code == 400
                assert refused.json() == {"error": "this server cannot run this remote model"}
                cloud = _chat(running.url, "cloud")  # ollama.com needs a signed request
                assert cloud.status_code == 401 and cloud.json() == {"error": "unauthorized"}
            else:
                for name in ("stub", "cloud"):
                    refused = _chat(running.url, name)
                    assert refused.status_code == 403 and refused.json() == {
                        "error": "ollama cloud is disabled: remote model is unavailable"
                    }
                shown = requests.post(running.url + "/api/show", json={"model": "stub"})
                assert shown.status_code == 403 and shown.json() == {
                    "error": "ollama cloud is disabled: remote model details are unavailable"
                }


def test_a_client_leaving_stops_the_remote_host(local, remote):
    _stub(local.url, "forever", "endless", remote.url)
    with requests.post(
        local.url + "/api/generate",
        json={"model": "forever", "prompt": "Q: one", "options": {"num_predict": -1}},
        stream=True,
        timeout=30,
    ) as reply:
        lines = reply.iter_lines()
        first = [json.loads(next(lines)) for _ in range(5)]
    assert all(not c["done"] and c["remote_model"] == "endless" for c in first)
    runner = remote.runner
    deadline = time.monotonic() + 10
    steps = runner.forward_calls
    while time.monotonic() < deadline:  # the remote stops within a few steps of the client
        time.sleep(0.3)
        if runner.forward_calls == steps:
            break
        steps = runner.forward_calls
    time.sleep(0.3)
    assert runner.forward_calls == steps, "the remote host kept generating"


def test_a_client_leaving_while_the_remote_host_loads_is_seen_at_once(local, remote):
    """Nothing streams while the other server loads the model, so only the watch on the client
    can tell it to stop: it then never starts the answer."""
    remote.model("slow", SCRIPT, endless=True, load_delay=1.5)
    _stub(local.url, "slow", "slow", remote.url)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            local.url + "/api/generate", json={"model": "slow", "prompt": "Q: one"}, timeout=0.4
        )
    deadline = time.monotonic() + 10  # the load, once started, runs its course
    while not remote.engine.runners and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # time enough for a first step, were one asked for
    assert all(runner.forward_calls == 0 for runner in remote.engine.runners)


def test_run_says_where_a_stub_runs_instead_of_loading_it(local, remote, capsys):
    """Ollama's ``run`` (``loadOrUnloadModel``): no load for a remote model, a line that says
    where it runs; an ollama.com model first needs an account, which ollamakit has none of."""
    from ollamakit_cli.client import ApiError, Client
    from ollamakit_cli.run import RunOptions, load_model

    loaded = len(remote.engine.runners)
    with Client(local.url) as client:
        load_model(client, RunOptions(model="stub"))
        assert capsys.readouterr().err.endswith(
            f"Connecting to 'big' on '{remote_url(remote.url)}'\n"
        )
        _stub(local.url, "cloudy", "gpt-oss:20b:cloud", "")
        with pytest.raises(ApiError, match="account unavailable"):
            load_model(client, RunOptions(model="cloudy"))
    assert len(remote.engine.runners) == loaded  # nothing was loaded there


class _Reply:
    def __init__(self, chunks):
        self.chunks = chunks

    def iter_bytes(self):
        yield from self.chunks


def test_reply_lines_are_split_wherever_the_chunks_end_and_bounded(monkeypatch):
    from ollamakit.errors import OllamaError
    from ollamakit.inference import remote

    chunks = [b'{"a":1}\n{"b"', b":2}\n\n", b'{"c":3}']
    assert list(remote._lines(_Reply(chunks))) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert list(remote._lines(_Reply([b"x\ny\n"[i : i + 1] for i in range(4)]))) == [b"x", b"y"]
    monkeypatch.setattr(remote, "MAX_LINE", 8)
    assert list(remote._lines(_Reply([b"12345678\n"]))) == [b"12345678"]
    for chunks in ([b"123456789\n"], [b"12345", b"6789"]):
        with pytest.raises(OllamaError, match="longer than 8 bytes"):
            list(remote._lines(_Reply(chunks)))
