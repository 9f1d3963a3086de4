"""The example third-party package (examples/ollamakit-acme) plugs in the way any company's
would: a storage driver found by name, a command added through a hook, and a coding tool for
``ollamakit launch``."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import ollama
import pytest
from click.testing import CliRunner
from stevedore import DriverManager

from ollamakit import drivers
from ollamakit.cli import build_cli
from ollamakit.testing.fixtures import ServerProcess, free_port
from ollamakit.testing.gguf_factory import tiny_llama

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ollamakit-acme"


def test_the_driver_is_found_by_name_through_stevedore():
    from ollamakit_acme.storage import AcmeStorage

    manager = DriverManager("ollamakit.storage", "acme", invoke_on_load=False)
    assert manager.driver is AcmeStorage
    assert drivers.driver_class("storage", "ACME") is AcmeStorage


def test_the_command_appears_in_help():
    result = CliRunner().invoke(build_cli(), ["--help"])
    assert "acme-usage" in result.output and "Disk usage per model" in result.output


def test_the_integration_is_launched_like_a_built_in_one(models_dir, tiny_gguf, tmp_path):
    """``ollamakit launch acme-agent``: the example's declarative integration, set up and started
    by the same launcher as the built-in ones (a fake ``acme-agent`` records what it was given)."""
    home, tools = tmp_path / "home", tmp_path / "bin"
    (home / ".acme").mkdir(parents=True)
    (home / ".acme" / "agent.json").write_text('{"theme": "dark"}')
    tools.mkdir()
    record = tmp_path / "record.txt"
    (tools / "acme-agent").write_text(f'#!/bin/sh\necho "$* $ACME_AGENT_BASE_URL" > {record}\n')
    (tools / "acme-agent").chmod(0o755)
    server = ServerProcess(models_dir).start()
    try:
        client = ollama.Client(host=server.url)
        client.create(model="base", files={"tiny.gguf": client.create_blob(tiny_gguf)})
        env = {**os.environ, "HOME": str(home), "PATH": str(tools), "OLLAMA_HOST": server.url}
        done = subprocess.run(
            [sys.executable, "-m", "ollamakit", "launch", "acme-agent", "--model", "base"],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert record.read_text() == f"--model base {server.url}/v1\n"
    assert json.loads((home / ".acme" / "agent.json").read_text()) == {
        "theme": "dark",
        "endpoint": f"{server.url}/v1",
        "models": ["base"],
    }


def create_two_models(url: str, gguf: Path) -> None:
    client = ollama.Client(host=url)
    digest = client.create_blob(gguf)
    client.create(model="base", files={"tiny.gguf": digest})
    client.create(model="base-terse", from_="base", system="Be terse.")


@pytest.fixture
def tiny_gguf(tmp_path):
    return tiny_llama(
        tmp_path / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
    )


def test_serving_from_the_acme_store_with_the_official_client(models_dir, tiny_gguf):
    server = ServerProcess(models_dir, env={"OLLAMAKIT_STORAGE": "acme"}).start()
    try:
        create_two_models(server.url, tiny_gguf)
        names = sorted(m.model for m in ollama.Client(host=server.url).list().models)
    finally:
        server.stop()
    assert names == ["base-terse:latest", "base:latest"]
    # The bytes went where the acme driver puts them, not into Ollama's layout.
    assert (models_dir / "acme" / "index.sqlite3").is_file()
    assert not any(p.is_file() for p in (models_dir / "manifests").rglob("*"))
    hex_ = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert (
        models_dir / "acme" / "objects" / hex_[:2] / hex_[2:4] / hex_
    ).read_bytes() == tiny_gguf.read_bytes()

    # The plugin's own command reads the same store: the shared weights are freed by neither rm.
    result = CliRunner().invoke(
        build_cli(), ["acme-usage", "--storage", "acme", "--models", str(models_dir)]
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:-1]}
    assert set(rows) == {"base:latest", "base-terse:latest"}
    assert result.output.splitlines()[-1].startswith("2 models, ")
    assert "(acme storage)" in result.output


def test_serve_with_the_storage_flag(models_dir, tiny_gguf):
    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models_dir)}
    env.pop("OLLAMAKIT_STORAGE", None)
    log = open(models_dir.parent / "serve-flag.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit", "serve", "--storage", "acme"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (models_dir.parent / "serve-flag.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        create_two_models(f"http://127.0.0.1:{port}", tiny_gguf)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    assert (models_dir / "acme" / "index.sqlite3").is_file()


def test_the_examples_own_tests_pass():
    """The example runs ollamakit's storage contract on its driver, as its README says."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
