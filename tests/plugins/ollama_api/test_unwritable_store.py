"""A store that cannot be written (a read-only mount, a full disk): every write answers 507 with
the condition in the system's words and no path, the store is unchanged, reads and generation
go on, and once there is room again writes work.

Real conditions, not simulated ones: the server runs in a mount namespace of its own
(``unshare``) where its models folder is bind-mounted read-only, or lives on a full tmpfs. The
test looks at the store through ``/proc/<pid>/root``, the server's own view of the files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from model_store_helpers import digest_of, snapshot
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.processes import wait_for_port
from ollamakit.web import create_app

pytestmark = pytest.mark.slow

READ_ONLY = {"error": "cannot write to the model store: read-only file system"}
FULL = {"error": "cannot write to the model store: no space left on device"}


def can_mount(tmp_path: Path) -> bool:
    target = tmp_path / "probe"
    target.mkdir()
    try:
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "mount",
                "-t",
                "tmpfs",
                "none",
                str(target),
            ],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture
def mounts(tmp_path):
    if not can_mount(tmp_path):
        pytest.skip("needs a mount namespace (unshare --mount, as root); the CI container has one")


class ConfinedServer(ServerProcess):
    """``ollamakit serve`` after ``setup`` (shell commands) in a mount namespace of its own."""

    def __init__(self, models_dir: Path, setup: str):
        super().__init__(models_dir)
        self.setup = setup

    def start(self, timeout: float = 30.0) -> ConfinedServer:
        self.log = open(self.models_dir.parent / f"server-{self.port}.log", "wb")
        script = f'{self.setup}\nexec "$0" -m ollamakit serve'
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, sys.executable],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(
            self.proc,
            self.port,
            timeout,
            lambda: RuntimeError(f"server exited with {self.proc.returncode}"),
        )
        return self

    def seen(self, path: Path) -> Path:
        """``path`` as the server sees it."""
        return Path(f"/proc/{self.proc.pid}/root") / Path(path).relative_to("/")


@pytest.fixture
def prepared(tmp_path):
    """A store holding one runnable model, ``kept``."""
    models = tmp_path / "prepared"
    kernel = make_kernel(Settings(models_dir=models))
    try:
        from falcon.testing import TestClient

        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        data = tiny_llama(
            tmp_path / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
        ).read_bytes()
        assert client.simulate_post(f"/api/blobs/{digest_of(data)}", body=data).status_code == 201
        reply = client.simulate_post(
            "/api/create",
            json={"model": "kept", "files": {"m.gguf": digest_of(data)}, "stream": False},
        )
        assert reply.status_code == 200, reply.text
    finally:
        kernel.close()
    return models


def attempt_writes(http: httpx.Client, expected: dict, models_dir: Path) -> None:
    small, large = os.urandom(100), os.urandom(3 << 20)  # waitress's buffer, then a scratch file
    replies = [
        http.post(f"/api/blobs/{digest_of(small)}", content=small),
        http.post(f"/api/blobs/{digest_of(large)}", content=large),
        http.post(
            "/api/create",
            json={"model": "child", "from": "kept", "system": "Be brief.", "stream": False},
        ),
        http.post(
            "/api/create", json={"model": "child", "from": "kept", "system": "Be brief."}
        ),  # streaming
        http.post("/api/copy", json={"source": "kept", "destination": "copied"}),
    ]
    for reply in replies:
        assert (reply.status_code, reply.json()) == (507, expected), reply.request.url
        assert str(models_dir) not in reply.text


def reads_still_work(http: httpx.Client) -> None:
    assert [m["name"] for m in http.get("/api/tags").json()["models"]] == ["kept:latest"]
    assert http.post("/api/show", json={"model": "kept"}).status_code == 200
    reply = http.post(
        "/api/generate",
        json={"model": "kept", "prompt": "a", "stream": False, "options": {"num_predict": 2}},
    )
    assert reply.status_code == 200 and reply.json()["done"]


def test_a_read_only_store(tmp_path, mounts, prepared):
    before = snapshot(prepared)
    server = ConfinedServer(prepared, f"mount --bind -o ro {prepared} {prepared}").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            attempt_writes(http, READ_ONLY, prepared)
            reply = http.request("DELETE", "/api/delete", json={"model": "kept"})
            assert (reply.status_code, reply.json()) == (507, READ_ONLY)
            reads_still_work(http)
        assert snapshot(server.seen(prepared)) == before
    finally:
        server.stop()
    assert snapshot(prepared) == before


def test_a_full_disk(tmp_path, mounts, prepared):
    disk = tmp_path / "disk"
    disk.mkdir()
    models = disk / "models"
    setup = (
        f"mount -t tmpfs -o size=8m none {disk}\ncp -a {prepared} {models}\n"
        f"dd if=/dev/zero of={disk}/filler bs=64k 2>/dev/null || true"
    )  # every block taken
    server = ConfinedServer(models, setup).start()
    try:
        store = server.seen(models)
        before = snapshot(store)
        assert before == snapshot(prepared)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            attempt_writes(http, FULL, models)
            reads_still_work(http)
            assert snapshot(store) == before
            server.seen(disk / "filler").unlink()  # room again: the same writes succeed
            data = os.urandom(3 << 20)
            assert http.post(f"/api/blobs/{digest_of(data)}", content=data).status_code == 201
            assert (
                http.post("/api/copy", json={"source": "kept", "destination": "copied"}).status_code
                == 200
            )
    finally:
        server.stop()
