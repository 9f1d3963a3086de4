"""API keys through real HTTP: every route the app registers, every method, needs a key; the
official clients send one and read the 401; the CLI and a pull from another ollamakit send one."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time

import anthropic
import httpx
import ollama
import openai
import pytest
from falcon import inspect

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.web import create_app
from ollamakit.web.auth import (
    CHALLENGE,
    REGISTRY_CHALLENGE,
    REGISTRY_UNAUTHORIZED,
    UNAUTHORIZED,
    is_registry,
)

KEYS = ("first-key-0123456789", "second-key-abcdefghij")
FILE_KEY = "key-from-the-file-42"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# the team's key\n\n{FILE_KEY}\n")
    return path


def start(tmp_path, label: str, env: dict) -> ServerProcess:
    models = tmp_path / f"models-{label}"
    models.mkdir()
    base = {
        "OLLAMA_NO_CLOUD": "1",
        "OLLAMA_API_KEY": "",
        "OLLAMAKIT_API_KEYS": "",
        "OLLAMAKIT_API_KEYS_FILE": "",
    }
    return ServerProcess(models, {**base, **env}).start()


@pytest.fixture
def keyed(tmp_path, key_file):
    server = start(
        tmp_path,
        "keyed",
        {"OLLAMAKIT_API_KEYS": ",".join(KEYS), "OLLAMAKIT_API_KEYS_FILE": str(key_file)},
    )
    yield server
    server.stop()


def registered_requests(tmp_path) -> list[tuple[str, str]]:
    """(method, path) for every route and method the app's router holds, the default
    responders (OPTIONS, 405s) included; each path field filled with a plain value."""
    kernel = make_kernel(Settings(models_dir=tmp_path))
    try:
        routes = inspect.inspect_routes(create_app(kernel))
    finally:
        kernel.close()
    found = []
    for route in routes:
        path = re.sub(r"\{[^}]*\}", "x", route.path)
        found += [(method.method, path) for method in route.methods]
    return found


def test_every_route_and_method_needs_a_key(tmp_path, keyed):
    """A keyed server refuses each registered (method, path) without a key and with a wrong one,
    and with a key answers exactly as a server without keys does."""
    requests = registered_requests(tmp_path / "probe")
    paths = {path for _, path in requests}
    assert {"/", "/api/tags", "/api/chat", "/v1/chat/completions", "/v1/messages", "/v2"} <= paths
    assert {"HEAD", "OPTIONS", "GET", "POST", "DELETE"} <= {method for method, _ in requests}
    assert len(requests) > 100
    open_server = start(tmp_path, "open", {})
    try:
        with (
            httpx.Client(base_url=keyed.url, timeout=30) as client,
            httpx.Client(base_url=open_server.url, timeout=30) as plain,
        ):
            for number, (method, path) in enumerate(requests):
                if (
                    method == "WEBSOCKET"
                ):  # Falcon's name for an ASGI upgrade: over WSGI a 400 before any route
                    assert client.request(method, path).status_code == 400
                    continue
                registry = is_registry(path)
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong"},
                    {"x-api-key": KEYS[0] + "x"},
                    {"Authorization": KEYS[0]},
                    basic(KEYS[0], "wrong"),
                    {"Authorization": "Basic not-base64!"},
                    # HTTP Basic is the registry's (for OCI clients) and no other route's.
                    *([] if registry else [basic("user", KEYS[0])]),
                ):
                    refused = client.request(method, path, headers=headers)
                    assert refused.status_code == 401, (method, path, headers, refused.status_code)
                    assert refused.headers["WWW-Authenticate"] == (
                        REGISTRY_CHALLENGE if registry else CHALLENGE
                    )
                    if method != "HEAD":
                        body = refused.json()
                        if registry:
                            assert body["errors"] == [
                                {"code": "UNAUTHORIZED", "message": REGISTRY_UNAUTHORIZED}
                            ]
                        else:
                            assert (
                                body["error"]["message"]
                                if path.startswith("/v1/")
                                else body["error"]
                            ) == UNAUTHORIZED
                key = (KEYS + (FILE_KEY,))[number % 3]
                header = {"Authorization": f"Bearer {key}"} if number % 2 else {"x-api-key": key}
                if registry and not number % 2:
                    header = basic("any-user", key)  # what an OCI client sends after the challenge
                answered = client.request(method, path, headers=header)
                expected = plain.request(method, path).status_code
                assert answered.status_code == expected, (
                    method,
                    path,
                    answered.status_code,
                    expected,
                )
                assert "WWW-Authenticate" not in answered.headers
            # Paths no route serves are refused too, so a caller without a key learns nothing.
            assert client.get("/no/such/route").status_code == 401
            assert client.get("/no/such/route", headers={"x-api-key": KEYS[1]}).status_code == 404
            # A CORS preflight needs a key as well; the 401 carries the origin header to read it by.
            preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
            refused = client.options("/api/chat", headers=preflight)
            assert (
                refused.status_code == 401
                and refused.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
            )
            assert (
                client.options("/api/chat", headers={**preflight, "x-api-key": KEYS[0]}).status_code
                == 204
            )
    finally:
        open_server.stop()


def test_official_clients(keyed, monkeypatch):
    wrong = openai.OpenAI(base_url=keyed.url + "/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.models.list()
    assert refused.value.status_code == 401
    assert UNAUTHORIZED in str(refused.value)
    right = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEYS[1], max_retries=0)
    assert right.models.list().object == "list"  # (an empty store: data is null, as in Ollama)

    # Anthropic's client sends x-api-key: past the key check, the unknown model is a 404.
    claude = anthropic.Anthropic(base_url=keyed.url, api_key=FILE_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="absent", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=keyed.url, api_key="nope", max_retries=0).models.list()
    assert refused.value.status_code == 401 and UNAUTHORIZED in str(refused.value)

    # The ollama client sends OLLAMA_API_KEY as a bearer token.
    monkeypatch.setenv("OLLAMA_API_KEY", KEYS[0])
    assert ollama.Client(host=keyed.url).list().models == []
    monkeypatch.setenv("OLLAMA_API_KEY", "wrong")
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=keyed.url).list()
    assert refused.value.status_code == 401


def cli(server, env: dict, command: str = "list") -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_API_KEY", "OLLAMAKIT_API_KEYS"))
    }
    return subprocess.run(
        [sys.executable, "-m", "ollamakit", command],
        env={**base, "OLLAMA_HOST": server.url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_sends_the_key(keyed, key_file):
    assert cli(keyed, {"OLLAMA_API_KEY": KEYS[1]}).returncode == 0
    # In the server's own environment the CLI sends the first key the server accepts.
    assert cli(keyed, {"OLLAMAKIT_API_KEYS_FILE": str(key_file)}).returncode == 0
    refused = cli(keyed, {})
    assert refused.returncode == 1 and UNAUTHORIZED in refused.stderr
    version = cli(keyed, {"OLLAMA_API_KEY": KEYS[0]}, "--version")
    assert version.returncode == 0 and version.stdout.startswith("ollama version is "), (
        version.stdout
    )


def test_probes_open_only_when_configured(tmp_path):
    server = start(
        tmp_path,
        "probes",
        {"OLLAMAKIT_API_KEYS": KEYS[0], "OLLAMAKIT_OPEN_PROBES": "liveness, readiness"},
    )
    closed = start(tmp_path, "closed", {"OLLAMAKIT_API_KEYS": KEYS[0]})
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/").text == "Ollama is running"
            assert client.head("/").status_code == 200
            assert client.get("/health").status_code == 200
            assert client.head("/health").status_code == 200
            for method, path in (
                ("POST", "/"),
                ("OPTIONS", "/"),
                ("DELETE", "/health"),
                ("GET", "/api/tags"),
                ("GET", "/api/version"),
            ):
                assert client.request(method, path).status_code == 401, (method, path)
        with httpx.Client(base_url=closed.url) as client:
            assert client.get("/").status_code == 401 and client.get("/health").status_code == 401
    finally:
        server.stop()
        closed.stop()


def test_a_key_file_that_cannot_be_read_stops_the_server(tmp_path):
    for content in (None, "# only a comment\n"):
        path = tmp_path / "keys"
        if content is not None:
            path.write_text(content)
        env = {
            **os.environ,
            "OLLAMAKIT_API_KEYS_FILE": str(path),
            "OLLAMA_MODELS": str(tmp_path),
            "OLLAMA_HOST": "127.0.0.1:1",
        }
        done = subprocess.run(
            [sys.executable, "-m", "ollamakit", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (
            done.returncode == 1
            and "API key file" in done.stderr
            and "Traceback" not in done.stderr
        )


def test_the_key_file_is_read_again_when_it_changes(keyed, key_file):
    """Keys are added and revoked by editing the file, with no restart; a file that goes wrong
    leaves only the setting's keys, never an open server."""

    def status(key: str) -> int:
        return httpx.get(
            keyed.url + "/api/tags", headers={"x-api-key": key}, timeout=30
        ).status_code

    def settles(key: str, expected: int) -> None:
        deadline = time.monotonic() + 15
        while status(key) != expected:
            assert time.monotonic() < deadline, (key, expected)
            time.sleep(0.1)

    assert status(FILE_KEY) == 200 and status("a-new-key-1234") == 401
    replacement = key_file.with_name("keys.new")
    replacement.write_text("a-new-key-1234\n")
    os.replace(replacement, key_file)  # as editors and secret managers swap files
    settles("a-new-key-1234", 200)
    assert status(FILE_KEY) == 401  # revoked
    assert status(KEYS[0]) == 200  # OLLAMAKIT_API_KEYS stay
    key_file.write_text("# the team's key\nthird-key-xyz\n")  # rewritten in place
    settles("third-key-xyz", 200)
    assert status("a-new-key-1234") == 401
    key_file.write_text("# no key left\n")
    settles("third-key-xyz", 401)
    assert status(KEYS[1]) == 200
    assert httpx.get(keyed.url + "/api/tags", timeout=30).status_code == 401
    key_file.unlink()
    time.sleep(1.5)
    assert status("third-key-xyz") == 401 and status(KEYS[0]) == 200
    key_file.write_text("back-again-key\n")
    settles("back-again-key", 200)


def test_one_ollamakit_pulls_from_another_with_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "HOME", str(tmp_path / "home")
    )  # no signing key or registry file of the machine's
    source_models = tmp_path / "models-source"
    kernel = make_kernel(Settings(models_dir=source_models))
    layer, _ = kernel.store.add_bytes(b"weights" * 1000)
    config, config_size = kernel.store.add_bytes(b'{"model_format":"gguf"}')
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config, config_size), [mf.Layer(mf.MODEL, layer, 7000)]
    )
    kernel.store.write_manifest(ModelName.parse("tiny:latest"), manifest)
    kernel.close()
    source = ServerProcess(source_models, {"OLLAMAKIT_API_KEYS": KEYS[0]}).start()
    target = make_kernel(Settings(models_dir=tmp_path / "models-target"))
    try:
        from falcon.testing import TestClient

        client = TestClient(create_app(target), headers={"Host": "localhost"})
        name = f"127.0.0.1:{source.port}/library/tiny:latest"

        def pull() -> list[dict]:
            result = client.simulate_post("/api/pull", json={"model": name, "insecure": True})
            return [json.loads(line) for line in result.text.splitlines() if line.strip()] or [
                result.json
            ]

        monkeypatch.delenv("OLLAMAKIT_REGISTRY_AUTH", raising=False)
        refused = pull()[-1]
        assert "wants an API key" in refused["error"], refused
        monkeypatch.setenv(
            "OLLAMAKIT_REGISTRY_AUTH", json.dumps({f"127.0.0.1:{source.port}": {"token": KEYS[0]}})
        )
        assert pull()[-1] == {"status": "success"}
        assert target.store.get(name).manifest_bytes == manifest.to_bytes()
        # A user name and the key as the password answer the registry's Basic challenge too.
        assert client.simulate_delete("/api/delete", json={"model": name}).status_code == 200
        monkeypatch.setenv(
            "OLLAMAKIT_REGISTRY_AUTH",
            json.dumps({f"127.0.0.1:{source.port}": {"username": "me", "password": KEYS[0]}}),
        )
        assert pull()[-1] == {"status": "success"}
        assert target.store.get(name).manifest_bytes == manifest.to_bytes()
    finally:
        target.close()
        source.stop()


def test_without_keys_nothing_changes(client):
    """No key configured: no check, and OPTIONS is answered as before (CORS preflight)."""
    assert client.simulate_get("/api/tags").status_code == 200
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    answer = client.simulate_options("/api/chat", headers=preflight)
    assert answer.status_code == 204 and "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert (
        client.simulate_options(
            "/api/chat", headers={**preflight, "Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert client.simulate_options("/api/chat").status_code == 204


def test_a_body_without_a_key_is_refused_before_it_is_received(keyed):
    """An upload of any size without a key is answered 401 from its headers: the server neither
    receives nor stores it (with a key, the same headers start an upload)."""
    import socket

    digest = "sha256:" + "0" * 64
    for path in (f"/api/blobs/{digest}", "/api/import", "/api/chat"):
        with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000\r\n\r\n".encode()
            )
            sock.sendall(b"x" * 65536)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401"), head
        assert f"www-authenticate: {CHALLENGE}".lower().encode() in head.lower()
        assert json.loads(body) == {"error": UNAUTHORIZED}
    leftovers = [p for p in keyed.models_dir.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_the_servers_own_key_goes_only_to_this_machine(monkeypatch):
    from ollamakit.config import client_api_key

    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.setenv("OLLAMAKIT_API_KEYS", "local-key,other")
    for host, expected in (
        ("", "local-key"),
        ("127.0.0.1:9", "local-key"),
        ("http://localhost", "local-key"),
        ("0.0.0.0", "local-key"),
        ("[::1]:5", "local-key"),
        ("example.com", None),
        ("10.1.2.3", None),
    ):
        monkeypatch.setenv("OLLAMA_HOST", host)
        assert client_api_key() == expected, host
    monkeypatch.setenv("OLLAMA_API_KEY", "mine")  # the caller's own key: sent wherever they point
    assert client_api_key() == "mine"
