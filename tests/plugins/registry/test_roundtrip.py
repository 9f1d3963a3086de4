"""Push to and pull from a real registry (Debian's docker-registry, the CNCF distribution
server), with the real SmolLM2 model, anonymously and behind htpasswd basic auth."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from registry_helpers import create_smol, requires_registry, statuses, tiny_model

from ollamakit.names import ModelName
from ollamakit_registry.testing import LocalRegistry

PULL_STATUSES = ["pulling manifest", "verifying sha256 digest", "writing manifest", "success"]


def check_push(events: list[dict], model) -> None:
    assert events[0] == {"status": "retrieving manifest"}
    assert events[-2:] == [{"status": "pushing manifest"}, {"status": "success"}]
    for layer in (*model.manifest.layers, model.manifest.config):
        mine = [e for e in events if e.get("digest") == layer.digest]
        assert mine and all(
            e["status"] == f"pushing {layer.digest[7:19]}" and e["total"] == layer.size
            for e in mine
        )
        assert mine[-1]["completed"] == layer.size


def check_pull(events: list[dict], manifest_bytes: bytes) -> None:
    assert [
        s for s in statuses(events) if not s.startswith("pulling ") or s == "pulling manifest"
    ] == PULL_STATUSES
    layers = json.loads(manifest_bytes)
    expected = [layer["digest"] for layer in layers["layers"]] + [layers["config"]["digest"]]
    pulled = [e["digest"] for e in events if "digest" in e]
    assert list(dict.fromkeys(pulled)) == expected  # layers, then the config
    for event in events:
        if "digest" in event:
            assert event["status"] == f"pulling {event['digest'][7:19]}"
            assert 0 <= event.get("completed", 0) <= event["total"]


def roundtrip(instance, registry, smol_gguf):
    source, target = instance("source"), instance("target")
    name = f"{registry.host}/library/smol:latest"
    create_smol(source, name, smol_gguf)
    model = source.kernel.store.get(name)
    check_push(source.push(name), model)

    events = target.pull(name)
    check_pull(events, model.manifest_bytes)
    pulled = target.kernel.store.get(name)
    assert pulled.manifest_bytes == model.manifest_bytes  # byte for byte: same model digest
    for digest in model.manifest.digests():
        assert (
            target.kernel.store.blob_path(digest).read_bytes()
            == source.kernel.store.blob_path(digest).read_bytes()
        )
    assert not list((target.models / "blobs").glob("*partial*"))
    return source, target, model


@pytest.mark.real_model
def test_push_then_pull_into_an_empty_store(instance, local_registry, smol_gguf):
    source, target, model = roundtrip(instance, local_registry, smol_gguf)
    model_digest = model.model_layer.digest
    gguf = smol_gguf.read_bytes()
    assert model_digest == "sha256:" + hashlib.sha256(gguf).hexdigest()

    # Pushing again: every blob is already there, reported once as complete.
    events = source.push(f"{local_registry.host}/library/smol:latest")
    for layer in (*model.manifest.layers, model.manifest.config):
        assert [e["completed"] for e in events if e.get("digest") == layer.digest] == [layer.size]
    # Pulling again: blobs on disk are reported once, complete, and nothing is fetched.
    again = target.pull(f"{local_registry.host}/library/smol")
    per_digest = {}
    for event in again:
        if "digest" in event:
            per_digest.setdefault(event["digest"], []).append(event)
    assert all(len(v) == 1 and v[0]["completed"] == v[0]["total"] for v in per_digest.values())
    assert again[-1] == {"status": "success"}


@pytest.mark.real_model
def test_pull_from_a_registry_behind_htpasswd(instance, tmp_path, smol_gguf, monkeypatch):
    requires_registry()
    users = {"alice": "correct horse"}
    with LocalRegistry(tmp_path / "auth-registry", users=users) as registry:
        source = instance("source")
        name = f"{registry.host}/team/smol:v1"
        create_smol(source, name, smol_gguf)

        # Without credentials: a clear error, nothing stored.
        events = source.push(name)
        assert "error" in events[-1] and "password" in events[-1]["error"]
        fresh = instance("nocreds")
        events = fresh.pull(name)
        assert events[-1]["error"].startswith("unauthorized")
        assert fresh.blobs() == set() and fresh.manifests() == {}

        # Wrong password: access denied.
        monkeypatch.setenv(
            "OLLAMAKIT_REGISTRY_AUTH",
            json.dumps({registry.host: {"username": "alice", "password": "nope"}}),
        )
        assert source.push(name)[-1] == {"error": "unauthorized: access denied"}

        monkeypatch.setenv(
            "OLLAMAKIT_REGISTRY_AUTH",
            json.dumps({registry.host: {"username": "alice", "password": "correct horse"}}),
        )
        model = source.kernel.store.get(name)
        check_push(source.push(name), model)
        target = instance("target")
        check_pull(target.pull(name), model.manifest_bytes)
        assert target.kernel.store.get(name).manifest_bytes == model.manifest_bytes


@pytest.mark.real_model
def test_credentials_from_the_file(instance, tmp_path, smol_gguf, monkeypatch):
    requires_registry()
    with LocalRegistry(tmp_path / "auth-registry", users={"bob": "pw"}) as registry:
        path = tmp_path / "registries.json"
        path.write_text(json.dumps({registry.host.upper(): {"username": "bob", "password": "pw"}}))
        monkeypatch.setenv("OLLAMAKIT_REGISTRIES_FILE", str(path))
        source = instance("source")
        name = f"{registry.host}/library/tiny:latest"
        create_smol(source, name, smol_gguf)
        assert source.push(name)[-1] == {"status": "success"}


@pytest.mark.real_model
def test_repull_removes_layers_the_new_manifest_dropped(instance, local_registry, smol_gguf):
    source, target, model = roundtrip(instance, local_registry, smol_gguf)
    name = f"{local_registry.host}/library/smol:latest"
    # A new version of the model with another system prompt: its old system layer goes away.
    events = source.post("/api/create", {"model": name, "from": name, "system": "You are verbose."})
    assert events[-1] == {"status": "success"}
    newer = source.kernel.store.get(name)
    assert source.push(name)[-1] == {"status": "success"}
    dropped = model.manifest.digests() - newer.manifest.digests()
    assert dropped
    events = target.pull(name)
    assert "removing unused layers" in statuses(events)
    assert events[-1] == {"status": "success"}
    assert not any(target.kernel.store.has_blob(d) for d in dropped)
    assert target.kernel.store.get(name).manifest_bytes == newer.manifest_bytes


def test_pull_errors(instance, local_registry):
    target = instance()
    missing = f"{local_registry.host}/library/missing:latest"
    assert target.pull(missing) == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    result = target.client.simulate_post(
        "/api/pull", json={"model": missing, "insecure": True, "stream": False}
    )
    assert result.status_code == 500
    assert result.json == {"error": "pull model manifest: file does not exist"}
    for bad in ("a/b/c/d", "m@sha256:00", "", "x:"):
        result = target.client.simulate_post("/api/pull", json={"model": bad})
        assert (result.status_code, result.json) == (400, {"error": "invalid model name"})
    result = target.client.simulate_post("/api/pull", json={"model": 5})
    assert result.status_code == 400


def test_push_errors(instance, local_registry):
    source = instance()
    result = source.client.simulate_post("/api/push", json={})
    assert (result.status_code, result.json) == (400, {"error": "model is required"})
    events = source.push(f"{local_registry.host}/library/absent:latest")
    assert events[:2] == [
        {"status": "retrieving manifest"},
        {"status": "couldn't retrieve manifest"},
    ]
    assert "not found" in events[-1]["error"]
    result = source.client.simulate_post(
        "/api/push",
        json={"model": f"{local_registry.host}/library/absent", "stream": False, "insecure": True},
    )
    assert result.status_code == 404


def test_pull_without_stream_returns_success(instance, local_registry):
    source = instance("source")
    name = f"{local_registry.host}/library/tiny:latest"
    tiny_model(source, name, os.urandom(3 * 1000 * 1000))
    assert source.push(name)[-1] == {"status": "success"}
    target = instance("target")
    result = target.client.simulate_post(
        "/api/pull", json={"model": name, "insecure": True, "stream": False}
    )
    assert (result.status_code, result.json) == (200, {"status": "success"})
    assert ModelName.parse(name) and target.kernel.store.get(name) is not None
