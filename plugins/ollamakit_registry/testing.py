"""A real OCI registry for tests and benchmarks: Debian's ``docker-registry`` (the CNCF
distribution server) on a free loopback port, storing into a temporary folder, optionally
behind htpasswd basic authentication."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARY = "/usr/bin/docker-registry"


def registry_binary() -> str | None:
    return BINARY if Path(BINARY).exists() else shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    import bcrypt

    lines = [f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}" for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")


class LocalRegistry:
    def __init__(self, root: Path, users: dict[str, str] | None = None):
        self.root = Path(root)
        self.users = users
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        binary = registry_binary()
        if binary is None:
            raise FileNotFoundError("docker-registry is not installed (apt-get install docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.users:
            write_htpasswd(self.root / "htpasswd", self.users)
            auth = f"auth:\n  htpasswd:\n    realm: ollamakit-test\n    path: {self.root / 'htpasswd'}\n"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self.log = open(self.root / "registry.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
            self.proc = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
