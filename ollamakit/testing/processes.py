"""Starting and stopping real server processes in tests (ours, a registry, ...)."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(proc: subprocess.Popen, port: int, timeout: float, on_exit) -> None:
    """Return once ``proc`` accepts connections on ``port``; ``on_exit()`` builds the error
    raised if it exits first. Raises RuntimeError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise on_exit()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"process {proc.args[0]} did not start listening on port {port}")


def stop_process(proc: subprocess.Popen | None) -> None:
    """Terminate politely, then kill; always reaps."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
