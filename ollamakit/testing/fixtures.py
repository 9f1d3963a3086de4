"""pytest fixtures, usable by plugin authors: ``pytest_plugins = ["ollamakit.testing.fixtures"]``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..config import Settings
from ..kernel import make_kernel
from .processes import free_port, stop_process, wait_for_port


@pytest.fixture
def models_dir(tmp_path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def settings(models_dir) -> Settings:
    return Settings(models_dir=models_dir)


@pytest.fixture
def kernel(settings):
    kernel = make_kernel(settings)
    yield kernel
    kernel.close()


@pytest.fixture
def client(kernel):
    """A falcon TestClient over the full app (every installed plugin's routes)."""
    from falcon.testing import TestClient

    from ..web import create_app

    return TestClient(create_app(kernel), headers={"Host": "localhost"})


class ServerProcess:
    """A real ``ollamakit serve`` process on a free loopback port."""

    def __init__(self, models_dir: Path, env: dict | None = None):
        self.port = free_port()
        self.models_dir = models_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(models_dir),
            **(env or {}),
        }
        self.proc = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.log = open(self.models_dir.parent / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ollamakit", "serve"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(
                self.proc,
                self.port,
                timeout,
                lambda: RuntimeError(f"server exited with {self.proc.returncode}"),
            )
        except BaseException:
            # A start that timed out leaves no server behind to hold a port and a core.
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc:
            self.log.close()


@pytest.fixture
def server(models_dir):
    """A real server (waitress, real HTTP) on an empty model directory."""
    proc = ServerProcess(models_dir).start()
    yield proc
    proc.stop()
