"""Real OCI clients read from an ollamakit that has API keys: they get the registry's Basic
challenge and log in with any user name and the key as the password. skopeo (containers/image,
podman's registry code) reads the manifest; oras-py pulls the manifest and every blob. Without
the key, or with a wrong one, both are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit.testing.fixtures import ServerProcess

KEY = "registry-key-0123456789"


def requires_skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        message = "skopeo is not installed (scripts/test.sh installs Debian's skopeo)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs scripts/test.sh as root: a missing client is a bug
        pytest.skip(message)
    return found


@pytest.fixture
def keyed_server(tmp_path):
    """A server with API keys whose store holds 'tiny' (a config and one layer)."""
    models = tmp_path / "models"
    kernel = make_kernel(Settings(models_dir=models))
    blobs = {}
    for data in (b"weights" * 50_000, b'{"model_format":"gguf"}'):
        digest, _ = kernel.store.add_bytes(data)
        blobs[digest] = data
    layer, config = blobs
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config, len(blobs[config])),
        [mf.Layer(mf.MODEL, layer, len(blobs[layer]))],
    )
    kernel.store.write_manifest(ModelName.parse("tiny:latest"), manifest)
    kernel.close()
    server = ServerProcess(models, {"OLLAMAKIT_API_KEYS": KEY, "OLLAMA_NO_CLOUD": "1"}).start()
    yield server, manifest.to_bytes(), blobs
    server.stop()


def skopeo_inspect(binary: str, tmp_path, image: str, creds: list[list[str]]) -> list:
    """``skopeo inspect --raw`` of ``image`` once per set of credentials, all at once: each
    spends 10 s on a TLS handshake to this plain-HTTP server before it falls back to HTTP."""
    # Its own auth file (none): no login of the machine's is used.
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    runs = [
        subprocess.Popen(
            [binary, "--insecure-policy", "inspect", "--raw", "--tls-verify=false", *c, image],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in creds
    ]
    answers = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        answers.append((run.returncode, out, err))
    return answers


def test_skopeo_logs_in_with_the_key_as_password_and_is_refused_without(tmp_path, keyed_server):
    """skopeo (containers/image) answers the Basic challenge with its credentials; it cannot
    copy a model (it knows only image layer types), so it reads the manifest."""
    binary = requires_skopeo()
    server, manifest, _ = keyed_server
    image = f"docker://127.0.0.1:{server.port}/library/tiny:latest"
    refusing = [["--no-creds"], ["--creds", "anyone:wrong-key"], ["--creds", f"{KEY}:"]]
    *refused, accepted = skopeo_inspect(
        binary, tmp_path, image, [*refusing, ["--creds", f"anyone:{KEY}"]]
    )
    for creds, (code, out, err) in zip(refusing, refused, strict=True):
        assert code != 0, (creds, out)
        assert "authentication required" in err, (creds, err)
    code, out, err = accepted
    assert code == 0, err
    assert out.encode() == manifest


def docker_config(tmp_path, host: str, user: str, password: str) -> str:
    """A login as ``docker login`` (and ``oras login``) records it."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = tmp_path / f"docker-config-{password}.json"
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return str(path)


def test_oras_pulls_the_manifest_and_every_blob_with_the_key(tmp_path, keyed_server):
    """oras-py, logged in with any user name and the key, pulls the model's manifest and blobs
    (its Basic backend answers the challenge); with a wrong key it is refused."""
    import oras.client

    server, manifest, blobs = keyed_server
    host = f"127.0.0.1:{server.port}"
    target = f"{host}/library/tiny:latest"

    def client():
        return oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")

    refused = client()
    with pytest.raises(ValueError) as refusal:
        refused.pull(target=target, config_path=docker_config(tmp_path, host, "u", "wrong"))
    assert str(refusal.value).endswith("/v2/library/tiny/manifests/latest: Unauthorized")

    out = tmp_path / "pulled"
    files = client().pull(
        target=target, config_path=docker_config(tmp_path, host, "someone", KEY), outdir=str(out)
    )
    layer = json.loads(manifest)["layers"][0]["digest"]
    assert [Path(f).name for f in files] == [layer]
    assert Path(files[0]).read_bytes() == blobs[layer]
    puller = client()
    puller.auth.load_configs(
        puller.get_container(target), [docker_config(tmp_path, host, "someone", KEY)]
    )
    assert puller.get_manifest(target) == json.loads(manifest)
    for digest, data in blobs.items():
        answer = puller.get_blob(target, digest)
        assert answer.status_code == 200 and answer.content == data
        assert hashlib.sha256(answer.content).hexdigest() == digest.removeprefix("sha256:")
