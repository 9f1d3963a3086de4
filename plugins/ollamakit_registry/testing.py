"""A real OCI registry for tests and benchmarks: Debian's ``docker-registry`` (the CNCF
distribution server) on a free loopback port, storing into a temporary folder, optionally
behind htpasswd basic authentication."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ollamakit.testing.processes import free_port, stop_process, wait_for_port

BINARY = "/usr/bin/docker-registry"


def registry_binary() -> str | None:
    return BINARY if Path(BINARY).exists() else shutil.which("docker-registry")


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    import bcrypt

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


class LocalRegistry:
    def __init__(self, root: Path, users: dict[str, str] | None = None):
        self.root = Path(root)
        self.users = users
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        binary = registry_binary()
        if binary is None:
            raise FileNotFoundError(
                "docker-registry is not installed (apt-get install docker-registry)"
            )
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
        self.proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(
                self.proc,
                self.port,
                timeout,
                lambda: RuntimeError(
                    f"docker-registry exited: {(self.root / 'registry.log').read_text()[-500:]}"
                ),
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc:
            self.log.close()
            self.proc = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
