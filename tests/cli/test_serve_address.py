"""``ollamakit serve`` on an address it cannot have: one line in Ollama's words, a non-zero
exit, and the server that holds the port goes on answering."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import httpx

from ollamakit.testing.fixtures import ServerProcess


def serve(tmp_path, host: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OLLAMA_HOST": host, "OLLAMA_MODELS": str(tmp_path / "models")}
    return subprocess.run(
        [sys.executable, "-m", "ollamakit", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr == f"Error: listen tcp 127.0.0.1:{port}: bind: address already in use\n"
    assert done.stdout == ""


def test_a_second_server_on_the_same_port_leaves_the_first_alone(tmp_path, models_dir):
    first = ServerProcess(models_dir).start()
    try:
        done = serve(tmp_path, f"127.0.0.1:{first.port}")
        assert done.returncode == 1
        assert "address already in use" in done.stderr and "Traceback" not in done.stderr
        assert "listening" not in done.stderr  # it never was
        assert httpx.get(f"{first.url}/api/version").status_code == 200
    finally:
        first.stop()


def test_a_host_that_does_not_resolve_says_so(tmp_path):
    done = serve(tmp_path, "no-such-host.invalid:11434")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: listen tcp: lookup no-such-host.invalid: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_port_zero_listens_on_a_free_port_and_says_which(tmp_path):
    """``OLLAMA_HOST=127.0.0.1:0``, as Ollama takes it: the system picks a free port, the server
    listens there and announces the port it got, which then answers."""
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:0", "OLLAMA_MODELS": str(tmp_path / "models")}
    server = subprocess.Popen(
        [sys.executable, "-m", "ollamakit", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()
        match = re.fullmatch(r"ollamakit listening on 127\.0\.0\.1:(\d+) \(models in .*\)\n", line)
        assert match, line
        port = int(match.group(1))
        assert port != 0
        assert httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_server_that_does_not_start_in_time_is_not_left_running(tmp_path):
    (tmp_path / "models").mkdir()
    server = ServerProcess(tmp_path / "models")
    try:
        server.start(timeout=0.001)
    except Exception:
        pass
    else:  # it cannot listen within a millisecond; if it did, there is nothing to check
        server.stop()
        return
    assert server.proc.poll() is not None
