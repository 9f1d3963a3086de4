"""A registry that lies or misbehaves gets a clean error, and the store stays as it was."""

from __future__ import annotations

import json
import os

import pytest
from registry_fakes import FakeRegistry, model_manifest, sha
from registry_helpers import statuses

from ollamakit import manifest as mf

NAME = "library/m:latest"


@pytest.fixture
def target(instance):
    return instance("target")


def pull_fails(target, registry, expected: str) -> list[dict]:
    before_blobs, before_manifests = target.blobs(), target.manifests()
    events = target.pull(f"{registry.host}/{NAME}")
    assert "error" in events[-1], events[-3:]
    assert expected in events[-1]["error"], events[-1]
    assert target.blobs() == before_blobs and target.manifests() == before_manifests
    return events


@pytest.mark.parametrize("size", [3000, 3 * 1000 * 1000])  # one request; ranged parts
def test_bad_digest(target, fake_registry, size):
    layer = os.urandom(size)
    fake_registry.add_model(NAME, layer)
    fake_registry.blobs[sha(layer)] = os.urandom(size)  # the right size, the wrong bytes
    events = pull_fails(
        target, fake_registry, f"digest mismatch, file must be downloaded again: want {sha(layer)}"
    )
    assert statuses(events)[-2:] == ["verifying sha256 digest", f"error: {events[-1]['error']}"]
    assert not list((target.models / "blobs").glob("*partial*"))  # bad bytes are not kept


@pytest.mark.parametrize("declare_length", [True, False])
@pytest.mark.parametrize("size", [5000, 2 * 1000 * 1000])
def test_more_bytes_than_declared(target, fake_registry, declare_length, size):
    layer = os.urandom(size)
    fake_registry.add_model(NAME, layer)
    fake_registry.extra = os.urandom(100_000)
    fake_registry.declare_length = declare_length
    pull_fails(target, fake_registry, "registry")
    partial = list((target.models / "blobs").glob("*-partial"))
    assert all(p.stat().st_size == len(layer) for p in partial)  # never written past the size


@pytest.mark.parametrize("size", [5000, 2 * 1000 * 1000])
def test_blob_larger_than_its_manifest_says(target, fake_registry, size):
    layer = os.urandom(size)
    fake_registry.add_model(NAME, layer, manifest=model_manifest(layer, layer_size=size - 1000))
    pull_fails(target, fake_registry, str(size - 1000))


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../etc/passwd",
        "sha256:" + "a" * 63 + "/",
        "../sha256-" + "a" * 64,
        "sha256:" + "A" * 64,
        "md5:" + "0" * 32,
    ],
)
def test_path_traversal_digests(target, fake_registry, tmp_path, digest):
    manifest = json.loads(model_manifest(b"x"))
    manifest["layers"][0]["digest"] = digest
    fake_registry.manifests[NAME] = json.dumps(manifest).encode()
    pull_fails(target, fake_registry, "invalid manifest: bad layer digest")
    assert not any(tmp_path.rglob("passwd"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m["layers"][0].update(size=-1), "bad layer size"),
        (lambda m: m["layers"][0].update(size=1 << 50), "claims"),
        (
            lambda m: m["layers"][0].update(
                mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip"
            ),
            "not a model layer",
        ),
        (
            lambda m: m.update(
                mediaType="application/vnd.docker.distribution.manifest.list.v2+json"
            ),
            "unsupported manifest type",
        ),
        (lambda m: m["config"].update(mediaType="text/plain"), "unsupported config type"),
        (lambda m: m.update(schemaVersion=1), "schemaVersion"),
    ],
)
def test_invalid_manifests(target, fake_registry, mutate, message):
    manifest = json.loads(model_manifest(b"x"))
    mutate(manifest)
    fake_registry.manifests[NAME] = json.dumps(manifest).encode()
    pull_fails(target, fake_registry, message)


def test_oversized_manifest(target, fake_registry):
    fake_registry.manifests[NAME] = b"{" + b" " * (mf.MAX_MANIFEST_BYTES + 10) + b"}"
    pull_fails(target, fake_registry, "manifest is")


@pytest.mark.parametrize("size", [1000, 2 * 1000 * 1000])
def test_redirect_loop(target, fake_registry, size):
    fake_registry.add_model(NAME, os.urandom(size))
    fake_registry.redirect = "loop"
    pull_fails(target, fake_registry, "stopped after 10 redirects")
    assert sum(1 for _, path, _ in fake_registry.requests if path.startswith("/loop/")) <= 10


def test_redirect_to_another_host_fetches_ranges_there_without_credentials(
    target, fake_registry, monkeypatch
):
    cdn = FakeRegistry().start()
    try:
        layer = os.urandom(3 * 1000 * 1000)
        fake_registry.add_model(NAME, layer)
        cdn.blobs = dict(fake_registry.blobs)
        fake_registry.redirect = cdn.url
        fake_registry.bearer = "registry-token"
        events = target.pull(f"{fake_registry.host}/{NAME}")
        assert events[-1] == {"status": "success"}
        assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer
        # The registry saw its token; the other host got ranged GETs and never the token.
        assert any(
            h.get("Authorization") == "Bearer registry-token" for _, _, h in fake_registry.requests
        )
        cdn_gets = [(p, h) for m, p, h in cdn.requests if p.startswith("/cdn/")]
        assert cdn_gets and all("Authorization" not in h for _, h in cdn_gets)
        layer_gets = [h for p, h in cdn_gets if p.endswith(sha(layer))]
        assert len(layer_gets) > 1 and all(h["Range"].startswith("bytes=") for h in layer_gets)
    finally:
        cdn.stop()


def test_registry_without_range_support(target, fake_registry):
    layer = os.urandom(2 * 1000 * 1000)
    fake_registry.add_model(NAME, layer)
    fake_registry.ranges = False
    events = target.pull(f"{fake_registry.host}/{NAME}")
    assert events[-1] == {"status": "success"}
    assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer


def test_accept_and_user_agent_headers(target, fake_registry):
    fake_registry.add_model(NAME, b"layer")
    assert target.pull(f"{fake_registry.host}/{NAME}")[-1] == {"status": "success"}
    method, path, headers = fake_registry.requests[0]
    assert (method, path) == ("GET", "/v2/library/m/manifests/latest")
    assert headers["Accept"] == mf.MANIFEST_MEDIA_TYPE
    assert headers["User-Agent"].startswith("ollama/")


def test_manifest_digest_header_is_checked(target, fake_registry, monkeypatch):
    from ollamakit_registry import client

    fake_registry.add_model(NAME, b"layer")
    real = client.Registry.get_manifest
    monkeypatch.setattr(
        client.Registry, "get_manifest", lambda self: (real(self)[0], "sha256:" + "0" * 64)
    )
    pull_fails(target, fake_registry, "Docker-Content-Digest")


def test_unreachable_registry(target):
    events = target.pull("127.0.0.1:9/library/m:latest")
    assert events[0] == {"status": "pulling manifest"}
    assert (
        "error" in events[-1]
        and "GET http://127.0.0.1:9/v2/library/m/manifests/latest" in events[-1]["error"]
    )


def test_a_dropped_connection_is_retried_where_it_stopped(target, fake_registry):
    layer = os.urandom(3 * 1000 * 1000)
    fake_registry.add_model(NAME, layer)
    fake_registry.drop_after = 1000 * 1000
    events = target.pull(f"{fake_registry.host}/{NAME}")
    assert events[-1] == {"status": "success"}
    assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer
    ranges = [
        h["Range"]
        for m, p, h in fake_registry.requests
        if p.endswith(sha(layer)) and h.get("Range") != "bytes=0-0"
    ]
    assert len(ranges) == 2 and ranges[1] == f"bytes=1000000-{len(layer) - 1}"
