"""Node and the official ollama-js library for the tests here, and a real server with SmolLM2.

The library's version is pinned in package.json and package-lock.json beside this file; ``npm ci``
installs exactly that into node_modules/ (git ignores it) the first time, and again only when
the lock changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.smollm2 import create_smollm2

from js_helpers import JsError

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "ollama_js.mjs"
NODE_MAJOR = 18  # ollama-js calls the global fetch


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)  # CI machines have Node and npm: a missing one is a set-up bug
    pytest.skip(reason)


def _installed_as_locked() -> bool:
    lock = json.loads((HERE / "package-lock.json").read_text())
    for path, entry in lock["packages"].items():
        if not path:
            continue
        manifest = HERE / path / "package.json"
        if (
            not manifest.exists()
            or json.loads(manifest.read_text()).get("version") != entry["version"]
        ):
            return False
    return True


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` program, with the locked ollama-js installed beside this file."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing(
            "Node.js and npm are needed for the ollama-js tests (scripts/test.sh installs Debian's nodejs and npm)"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))
    if major < NODE_MAJOR:
        _missing(f"ollama-js needs Node.js {NODE_MAJOR} or newer; this machine has {version}")
    if not _installed_as_locked():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


@pytest.fixture(scope="module")
def smol_server(tmp_path_factory):
    """A real ``ollamakit serve`` with one slot (so an abandoned answer holds it) and SmolLM2
    created through the API as ``smol``, its template offering tools."""
    models_dir = tmp_path_factory.mktemp("js") / "models"
    models_dir.mkdir()
    server = ServerProcess(models_dir, env={"OLLAMA_NUM_PARALLEL": "1"}).start()
    try:
        server.digest = create_smollm2(server.url, ["smol"])
        yield server
    finally:
        server.stop()


@pytest.fixture
def js(node, smol_server):
    """``js(method, **request)``: ollama-js's ``method`` called on the server with ``request``;
    its result as JSON, or ``JsError`` raised with what it threw."""

    def call(method: str, **request):
        done = subprocess.run(
            [node, str(DRIVER), smol_server.url, method, json.dumps(request)],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout.splitlines()[-1])
        if "thrown" in reply:
            raise JsError(reply["thrown"])
        return reply["result"]

    return call
