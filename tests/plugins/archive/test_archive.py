"""Export and import: a model moves between two servers as one archive, through the CLI and real
HTTP; a hostile or damaged archive is a 400 that leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

import httpx
import ollama
import pytest
from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.web import create_app

LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'


def snapshot(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def app_client(models) -> tuple:
    kernel = make_kernel(Settings(models_dir=models))
    return kernel, TestClient(create_app(kernel), headers={"Host": "localhost"})


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> bytes:
    """A runnable model file of about 6 MB: large enough to be streamed, not held."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return tiny_llama(path, n_layers=2, n_embd=256, n_heads=4, n_kv_heads=2, n_ff=512).read_bytes()


@pytest.fixture
def source(tmp_path, weights):
    """A store holding 'tiny' (and 'tiny:other', sharing its weights), and its exported archive."""
    kernel, client = app_client(tmp_path / "source")
    digest = "sha256:" + hashlib.sha256(weights).hexdigest()
    assert client.simulate_post(f"/api/blobs/{digest}", body=weights).status_code == 201
    for name, system in (("tiny", "Be brief."), ("tiny:other", "Be kind.")):
        result = client.simulate_post(
            "/api/create",
            json={"model": name, "files": {"m.gguf": digest}, "system": system, "stream": False},
        )
        assert result.status_code == 200, result.text
    archive = client.simulate_post("/api/export", json={"model": "tiny"})
    assert archive.status_code == 200 and archive.headers["Content-Type"] == "application/x-tar"
    assert int(archive.headers["Content-Length"]) == len(archive.content)
    yield kernel, client, archive.content
    kernel.close()


def members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [
            (info, tar.extractfile(info).read() if info.isfile() else None)
            for info in tar.getmembers()
        ]


def build(entries) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_the_archive_is_an_oci_image_layout(source, weights):
    kernel, client, archive = source
    found = members(archive)
    names = [info.name for info, _ in found]
    assert names[:2] == ["oci-layout", "index.json"]
    assert json.loads(found[0][1]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(found[1][1])
    (entry,) = index["manifests"]
    manifest = kernel.store.get("tiny").manifest_bytes
    assert (
        entry["annotations"]["org.opencontainers.image.ref.name"]
        == "registry.ollama.ai/library/tiny:latest"
    )
    assert (entry["digest"], entry["size"]) == (
        "sha256:" + hashlib.sha256(manifest).hexdigest(),
        len(manifest),
    )
    for info, data in found[2:]:
        assert info.name == "blobs/sha256/" + hashlib.sha256(data).hexdigest() and info.isreg()
    assert weights in [data for _, data in found]
    # The same model always gives the same bytes.
    assert client.simulate_post("/api/export", json={"model": "tiny"}).content == archive
    both = members(
        client.simulate_post("/api/export", json={"models": ["tiny", "tiny:other"]}).content
    )
    assert sum(data == weights for _, data in both) == 1  # a shared blob once
    assert client.simulate_post("/api/export", json={"model": "absent"}).status_code == 404
    assert client.simulate_post("/api/export", json={}).status_code == 400


def cli(command: list[str], server: ServerProcess) -> subprocess.CompletedProcess:
    env = {**os.environ, "OLLAMA_HOST": server.url}
    return subprocess.run(
        [sys.executable, "-m", "ollamakit", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_and_import_through_the_cli_and_real_http(tmp_path, source, weights):
    kernel, _, archive = source
    kernel.close()
    first = ServerProcess(tmp_path / "source").start()
    (tmp_path / "target").mkdir()
    second = ServerProcess(tmp_path / "target").start()
    try:
        out = tmp_path / "tiny.tar"
        done = cli(["export", "tiny", "-o", str(out)], first)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == archive
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
        done = cli(["import", str(out)], second)
        assert (done.returncode, done.stdout) == (0, "imported tiny:latest\n"), done.stderr
        client = ollama.Client(host=second.url)
        assert [m.model for m in client.list().models] == ["tiny:latest"]
        assert "SYSTEM Be brief." in client.show("tiny").modelfile
        answer = client.generate(
            model="tiny", prompt="hi", options={"num_predict": 3, "temperature": 0}
        )
        assert answer.done and answer.eval_count == 3
        imported = tmp_path / "target" / "blobs" / ("sha256-" + hashlib.sha256(weights).hexdigest())
        assert imported.read_bytes() == weights
        # Importing again changes nothing; a missing model is the server's words.
        assert cli(["import", str(out)], second).returncode == 0
        refused = cli(["export", "absent", "-o", str(tmp_path / "x.tar")], first)
        assert (
            refused.returncode == 1
            and "not found" in refused.stderr
            and not (tmp_path / "x.tar").exists()
        )
        # A damaged archive over real HTTP, its weights streamed to a scratch file by the transport.
        flipped = weights[:4096] + bytes([weights[4096] ^ 1]) + weights[4097:]
        broken = build(
            [(info, flipped if data == weights else data) for info, data in members(archive)]
        )
        before = snapshot(tmp_path / "target")
        reply = httpx.post(second.url + "/api/import", content=broken, timeout=60)
        assert (
            reply.status_code == 400
            and "does not hold the bytes its name says" in reply.json()["error"]
        )
        # The transport removes the body's scratch file once the connection has closed.
        deadline = time.monotonic() + 10
        while snapshot(tmp_path / "target") != before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert snapshot(tmp_path / "target") == before
    finally:
        first.stop()
        second.stop()


def gnu_long_name() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info, data = file("a/" * (1 << 17), b"x")
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def hostile_archives(archive: bytes, weights: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (archive, what its error must say)."""
    found = members(archive)
    layout, index = found[0], found[1]
    blobs = found[2:]
    big = next(item for item in blobs if item[1] == weights)
    small = [item for item in blobs if item is not big]
    manifest_entry = json.loads(index[1])["manifests"][0]
    manifest_data = next(
        data
        for _, data in small
        if "sha256:" + hashlib.sha256(data).hexdigest() == manifest_entry["digest"]
    )

    def link(kind):
        info = tarfile.TarInfo(big[0].name)
        info.type, info.linkname = kind, "/etc/passwd"
        return info, None

    def special(kind):
        info = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        info.type = kind
        return info, None

    wrong_small = [
        (info, b"x" * len(data)) if info.name != small[0][0].name else (info, data[::-1])
        for info, data in small
    ][:1]
    huge_pax = tarfile.TarInfo("blobs/sha256/" + "1" * 64)
    huge_pax.pax_headers = {"comment": "x" * (1 << 20)}
    oversize = tarfile.TarInfo("index.json")
    oversize.size = 2 << 20
    return {
        "climbing": (
            build([layout, index, *blobs, file("../evil", b"x")]),
            "leaves the archive's folder",
        ),
        "climbing inside": (
            build([layout, index, file("blobs/../../evil", b"x"), *blobs]),
            "leaves the archive's folder",
        ),
        "absolute": (build([file("/etc/cron.d/evil", b"x"), layout, index, *blobs]), "absolute"),
        "symlink": (build([layout, index, *small, link(tarfile.SYMTYPE)]), "is a link"),
        "hard link": (build([layout, index, *small, link(tarfile.LNKTYPE)]), "is a link"),
        "fifo": (build([layout, index, *blobs, special(tarfile.FIFOTYPE)]), "not a plain file"),
        "device": (build([layout, index, *blobs, special(tarfile.CHRTYPE)]), "not a plain file"),
        "huge pax header": (build([layout, index, (huge_pax, b"")]), "an extended header of"),
        "huge long name": (gnu_long_name(), "an extended header of"),
        "oversize index": (
            build([layout, (oversize, b"{" * (2 << 20)), *blobs]),
            "more than the 1048576 allowed",
        ),
        "wrong digest, small": (
            build([layout, index, *wrong_small, *small[1:], big]),
            "does not hold the bytes its name says",
        ),
        "wrong digest, weights": (
            build([layout, index, *small, (big[0], weights[:-1] + b"!")]),
            "does not hold the bytes its name says",
        ),
        "missing blob": (build([layout, index, *small]), "which the archive does not hold"),
        "missing manifest": (
            build([layout, index, big] + [s for s in small if s[1] != manifest_data]),
            "manifest of tiny:latest is not in the archive",
        ),
        "cut short": (
            build([layout, index, *small, big])[: -len(weights) // 2],
            "not a readable tar file",
        ),
        "not a tar": (os.urandom(4096), "not a readable tar file"),
        "gzipped": (__import__("gzip").compress(archive), "not a readable tar file"),
        "no layout file": (build([index, *blobs]), "no oci-layout file"),
        "unexpected file": (
            build([layout, index, *blobs, file("etc/passwd", b"root")]),
            "unexpected entry 'etc/passwd'",
        ),
        "twice": (build([layout, index, *blobs, small[0]]), "appears twice"),
        "unnamed": (
            build(
                [
                    layout,
                    file(
                        "index.json",
                        json.dumps({"manifests": [{**manifest_entry, "annotations": {}}]}).encode(),
                    ),
                    *blobs,
                ]
            ),
            "no valid model name",
        ),
    }


def test_hostile_archives_are_refused_and_leave_nothing(tmp_path, source, weights):
    _, _, archive = source
    kernel, client = app_client(tmp_path / "target")
    try:
        before = snapshot(tmp_path / "target")
        for case, (data, message) in hostile_archives(archive, weights).items():
            result = client.simulate_post("/api/import", body=data)
            assert result.status_code == 400, (case, result.text)
            error = result.json["error"]
            assert error.startswith("invalid archive: ") and message in error, (case, error)
            assert str(tmp_path) not in error and "Traceback" not in error
            assert snapshot(tmp_path / "target") == before, case
            assert kernel.store.list() == []
        assert client.simulate_post("/api/import", body=b"").status_code == 400
        # And the genuine archive still goes in.
        result = client.simulate_post("/api/import", body=archive)
        assert result.status_code == 200 and result.json == {
            "status": "success",
            "models": ["tiny:latest"],
        }
    finally:
        kernel.close()


def test_a_blob_the_store_already_has_need_not_be_in_the_archive(tmp_path, source, weights):
    """An archive of a model whose weights the target has: the manifest may name them."""
    _, _, archive = source
    kernel, client = app_client(tmp_path / "target")
    try:
        digest = "sha256:" + hashlib.sha256(weights).hexdigest()
        assert client.simulate_post(f"/api/blobs/{digest}", body=weights).status_code == 201
        without = build([item for item in members(archive) if item[1] != weights])
        result = client.simulate_post("/api/import", body=without)
        assert result.status_code == 200, result.text
        assert kernel.store.get("tiny").model_layer.digest == digest
    finally:
        kernel.close()


def test_import_under_another_name_through_the_cli_and_real_http(tmp_path, source):
    _, client, archive = source
    both = client.simulate_post("/api/export", json={"models": ["tiny", "tiny:other"]}).content
    (tmp_path / "tiny.tar").write_bytes(archive)
    (tmp_path / "both.tar").write_bytes(both)
    (tmp_path / "target").mkdir()
    server = ServerProcess(tmp_path / "target").start()
    try:
        done = cli(["import", str(tmp_path / "tiny.tar"), "--name", "team/renamed:v1"], server)
        assert (done.returncode, done.stdout) == (0, "imported team/renamed:v1\n"), done.stderr
        models = ollama.Client(host=server.url).list().models
        assert [m.model for m in models] == ["team/renamed:v1"]  # not also under its own name
        original = source[0].store.get("tiny")
        assert original is not None
        assert models[0].digest == hashlib.sha256(original.manifest_bytes).hexdigest()
        # An invalid name is the server's 400, before anything is stored.
        before = snapshot(tmp_path / "target")
        refused = cli(["import", str(tmp_path / "tiny.tar"), "--name", "bad name!"], server)
        assert refused.returncode == 1 and "invalid model name 'bad name!'" in refused.stderr
        reply = httpx.post(
            server.url + "/api/import", params={"name": "a/b/c/d"}, content=archive, timeout=60
        )
        assert reply.status_code == 400 and reply.json() == {
            "error": "invalid model name 'a/b/c/d'"
        }
        # A new name is for one model; an archive of two is refused and leaves nothing.
        refused = cli(["import", str(tmp_path / "both.tar"), "--name", "other"], server)
        assert refused.returncode == 1 and "holds 2" in refused.stderr, refused.stderr
        deadline = time.monotonic() + 10
        while snapshot(tmp_path / "target") != before and time.monotonic() < deadline:
            time.sleep(0.05)  # the transport removes the body's scratch file after the answer
        assert snapshot(tmp_path / "target") == before
        # As with the archive's own name, a model of the new name is replaced.
        other = source[0].store.get("tiny:other")
        other_archive = client.simulate_post("/api/export", json={"model": "tiny:other"}).content
        (tmp_path / "other.tar").write_bytes(other_archive)
        done = cli(["import", str(tmp_path / "other.tar"), "--name", "team/renamed:v1"], server)
        assert done.returncode == 0, done.stderr
        (model,) = ollama.Client(host=server.url).list().models
        assert model.model == "team/renamed:v1"
        assert model.digest == hashlib.sha256(other.manifest_bytes).hexdigest()
    finally:
        server.stop()
