"""Credentials, challenges and Ollama's key-signed token request."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from registry_fakes import sha

from ollamakit.errors import BadRequest
from ollamakit_registry import auth, credentials
from ollamakit_registry.pull import pull_model


def test_parse_challenge():
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://r.example/token",service="registry",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://r.example/token",
        "service": "registry",
        "scope": "repository:a/b:pull,push",
    }
    assert auth.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_credentials_sources(tmp_path, monkeypatch):
    path = tmp_path / "registries.json"
    path.write_text(
        json.dumps(
            {"Reg.Example:5000": {"username": "u", "password": "p"}, "other": {"token": "t"}}
        )
    )
    monkeypatch.setenv("OLLAMAKIT_REGISTRIES_FILE", str(path))
    assert credentials.credentials_for("reg.example:5000") == credentials.Credentials("u", "p", "")
    monkeypatch.setenv("OLLAMAKIT_REGISTRY_AUTH", json.dumps({"other": {"token": "from-env"}}))
    assert credentials.credentials_for("OTHER").token == "from-env"
    monkeypatch.setenv("OLLAMAKIT_REGISTRY_AUTH", "[1, 2]")
    with pytest.raises(BadRequest, match="JSON object"):
        credentials.load_credentials()
    monkeypatch.setenv("OLLAMAKIT_REGISTRY_AUTH", json.dumps({"h": {"username": 5}}))
    with pytest.raises(BadRequest, match="strings"):
        credentials.load_credentials()


def test_a_configured_token_goes_only_to_its_host(monkeypatch):
    import httpx

    monkeypatch.setenv("OLLAMAKIT_REGISTRY_AUTH", json.dumps({"reg.example": {"token": "secret"}}))
    authenticator = auth.Authenticator(httpx.Client(), "https://reg.example")
    assert authenticator.headers_for("https://reg.example/v2/a/b/blobs/x") == {
        "Authorization": "Bearer secret"
    }
    assert authenticator.headers_for("https://cdn.example/blob") == {}
    assert authenticator.headers_for("http://reg.example/v2/") == {}  # not over a downgraded scheme
    assert authenticator.headers_for("https://reg.example.evil.com/v2/") == {}


def test_key_signed_token_request(instance, fake_registry):
    """With a key in ~/.ollama and a realm on the registry's own host, the token request is
    signed as Ollama signs it, and the token is then used as a bearer."""
    key = auth.ensure_key()  # HOME is a temporary folder in these tests
    assert auth.key_path().exists() and auth.key_path().with_suffix(".pub").read_text().startswith(
        "ssh-ed25519 "
    )
    assert oct(auth.key_path().stat().st_mode & 0o777) == "0o600"
    fake_registry.bearer = "tok-123"
    layer = os.urandom(500)
    fake_registry.add_model("library/m:latest", layer)
    target = instance()
    assert target.pull(f"{fake_registry.host}/library/m:latest")[-1] == {"status": "success"}

    ((method, path, headers),) = [r for r in fake_registry.requests if r[1].startswith("/token")]
    query = parse_qs(urlsplit(path).query)
    assert query["service"] == ["fake"] and query["scope"] == ["repository:x:pull"]
    assert query["ts"][0].isdigit() and len(base64.urlsafe_b64decode(query["nonce"][0])) == 16
    public_b64, signature_b64 = headers["Authorization"].split(":")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert public.split(b" ")[1].decode() == public_b64
    empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    signed = f"GET,{fake_registry.url}{path},{empty}".encode()
    key.public_key().verify(base64.b64decode(signature_b64), signed)  # raises if wrong
    assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer


def test_anonymous_token_without_key(instance, fake_registry):
    fake_registry.bearer = "anon"
    fake_registry.add_model("library/m:latest", b"abc")
    target = instance()
    assert target.pull(f"{fake_registry.host}/library/m:latest")[-1] == {"status": "success"}
    ((_, path, headers),) = [r for r in fake_registry.requests if r[1].startswith("/token")]
    assert "Authorization" not in headers and "ts=" not in path
    assert not auth.key_path().exists()


def test_realm_must_not_downgrade_to_http():
    import httpx

    authenticator = auth.Authenticator(httpx.Client(), "https://reg.example")
    with pytest.raises(auth.Unauthorized, match="insecure protocol http"):
        authenticator.answer('Bearer realm="http://reg.example/token"')
    with pytest.raises(auth.Unauthorized, match="without a WWW-Authenticate"):
        authenticator.answer(None)


def test_ollama_registry_refuses_a_realm_on_another_host():
    import httpx

    authenticator = auth.Authenticator(httpx.Client(), "https://registry.ollama.ai")
    with pytest.raises(
        auth.Unauthorized,
        match='realm host "evil.example" does not match original host "registry.ollama.ai"',
    ):
        authenticator.answer('Bearer realm="https://evil.example/token"')


def test_concurrent_pulls_share_one_download(instance, fake_registry):
    layer = os.urandom(6 * 1000 * 1000)
    fake_registry.add_model("library/m:latest", layer)
    fake_registry.throttle = 12 * 1000 * 1000
    target = instance()
    name = f"{fake_registry.host}/library/m:latest"
    results = []

    def pull():
        results.append(list(pull_model(target.kernel, name, insecure=True)))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r[-1] for r in results] == [{"status": "success"}] * 3
    assert fake_registry.blob_bytes_sent < 1.5 * len(layer)  # fetched once, not three times
    assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer
