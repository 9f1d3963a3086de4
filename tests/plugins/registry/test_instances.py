"""One ollamakit pulls from another: the read-only ``/v2/`` endpoints over our own store."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import httpx
import pytest
from registry_helpers import create_smol, statuses, tiny_model

from ollamakit import manifest as mf
from ollamakit.testing.fixtures import ServerProcess


def test_registry_endpoints(instance):
    server = instance("server")
    layer = bytes(range(256)) * 4
    manifest = tiny_model(server, "ns/tiny:v1", layer)
    other = tiny_model(server, "other:latest", b"another layer")
    client = server.client
    data = server.kernel.store.get("ns/tiny:v1").manifest_bytes

    result = client.simulate_get("/v2/")
    assert (
        result.status_code == 200
        and result.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    )

    result = client.simulate_get("/v2/ns/tiny/manifests/v1")
    assert result.status_code == 200 and result.content == data
    assert result.headers["Content-Type"] == mf.MANIFEST_MEDIA_TYPE
    digest = result.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.simulate_get(f"/v2/ns/tiny/manifests/{digest}").content == data
    head = client.simulate_head("/v2/NS/Tiny/manifests/V1")
    assert (
        head.status_code == 200
        and head.headers["Content-Length"] == str(len(data))
        and head.content == b""
    )
    missing = client.simulate_get("/v2/ns/tiny/manifests/nope")
    assert missing.status_code == 404 and missing.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    blob = f"/v2/ns/tiny/blobs/{manifest.layers[0].digest}"
    full = client.simulate_get(blob)
    assert (
        full.status_code == 200
        and full.content == layer
        and full.headers["Accept-Ranges"] == "bytes"
    )
    part = client.simulate_get(blob, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (
        206,
        layer[10:20],
        f"bytes 10-19/{len(layer)}",
    )
    assert client.simulate_get(blob, headers={"Range": "bytes=-5"}).content == layer[-5:]
    assert client.simulate_get(blob, headers={"Range": "bytes=1000-"}).content == layer[1000:]
    unsatisfiable = client.simulate_get(blob, headers={"Range": f"bytes={len(layer)}-"})
    assert (
        unsatisfiable.status_code == 416
        and unsatisfiable.headers["Content-Range"] == f"bytes */{len(layer)}"
    )
    assert client.simulate_head(blob).headers["Content-Length"] == str(len(layer))
    # Blobs are scoped to the repositories that reference them; bad digests are simply unknown.
    assert client.simulate_get(f"/v2/ns/tiny/blobs/{other.layers[0].digest}").status_code == 404
    for bad in ("sha256:..%2F..%2Fetc", "sha256:" + "0" * 64, "../../manifests"):
        assert client.simulate_get(f"/v2/ns/tiny/blobs/{bad}").status_code == 404
    # Read-only: nothing can be uploaded.
    assert client.simulate_post("/v2/ns/tiny/blobs/uploads").status_code in (404, 405)


@pytest.mark.real_model
def test_one_instance_pulls_from_another(instance, smol_gguf):
    source = instance("source")
    create_smol(source, "smol:latest", smol_gguf)
    model = source.kernel.store.get("smol:latest")
    server = ServerProcess(source.models).start()
    try:
        # Range requests through the real server (waitress) send exactly the window.
        layer = model.model_layer
        with httpx.Client(base_url=server.url) as http:
            reply = http.get(
                f"/v2/library/smol/blobs/{layer.digest}", headers={"Range": "bytes=100-1099"}
            )
            assert reply.status_code == 206 and reply.content == smol_gguf.read_bytes()[100:1100]

        target = instance("target")
        name = f"127.0.0.1:{server.port}/library/smol:latest"
        events = target.pull(name)
        assert events[-1] == {"status": "success"}, events[-3:]
        assert statuses(events)[0] == "pulling manifest"
        pulled = target.kernel.store.get(name)
        assert pulled.manifest_bytes == model.manifest_bytes
        for digest in model.manifest.digests():
            assert (
                target.kernel.store.blob_path(digest).read_bytes()
                == source.kernel.store.blob_path(digest).read_bytes()
            )
    finally:
        server.stop()


def test_cli_pull_and_push(instance, tmp_path, local_registry):
    """``ollamakit push`` and ``ollamakit pull`` talk to a running server and show progress."""
    source = instance("source")
    name = f"{local_registry.host}/library/tiny:latest"
    tiny_model(source, name, os.urandom(10_000))
    server = ServerProcess(source.models).start()
    try:
        env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{server.port}"}
        run = subprocess.run(
            [sys.executable, "-m", "ollamakit", "push", "--insecure", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "pushing manifest" in run.stderr and "success" in run.stderr
        source.kernel.store.delete(source.kernel.store.get(name).name)
        run = subprocess.run(
            [sys.executable, "-m", "ollamakit", "pull", "--insecure", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "pulling manifest" in run.stderr and "verifying sha256 digest" in run.stderr
        assert source.kernel.store.get(name) is not None
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ollamakit",
                "pull",
                "--insecure",
                f"{local_registry.host}/library/none",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0 and "pull model manifest: file does not exist" in run.stderr
    finally:
        server.stop()
