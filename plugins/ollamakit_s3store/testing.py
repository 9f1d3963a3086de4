"""A real S3 server for tests: moto's standalone server (S3's REST protocol, conditional writes
included) in a process of its own on loopback, and a fresh bucket per test.

moto checks a write's condition (``If-None-Match: *``, ``If-Match``) and then writes, with no
lock between, so two racing conditional writes to one key can both succeed where S3 lets one.
The server here is moto's application with one addition: writes of whole objects to the same
key (PUT, DELETE, completing a multipart upload) take turns, which makes each condition and its
write atomic, as they are on S3. Everything else, parts included, runs concurrently.

Loaded by ``tests/conftest.py``; a test whose storage driver parameter is ``s3`` (the storage
contract over every installed driver, for one) gets a fresh bucket without asking.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from ollamakit.testing.processes import free_port, stop_process, wait_for_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """moto's S3 server on a free loopback port, with the environment boto3 needs to reach it."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(folder)
        self.proc = None

    def env(self, bucket: str | None = None) -> dict[str, str]:
        env = {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": self.url,
            # nothing from this machine's own AWS set-up
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
        }
        if bucket:
            env["OLLAMAKIT_S3_BUCKET"] = bucket
        return env

    def start(self, timeout: float = 60.0) -> S3Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = open(self.folder / f"moto-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ollamakit_s3store.testing", str(self.port)],
            env={**os.environ, **self.env()},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(
            self.proc,
            self.port,
            timeout,
            lambda: RuntimeError(f"the S3 server exited with {self.proc.returncode}"),
        )
        return self

    @functools.cached_property
    def client(self):
        import boto3

        env = self.env()
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        ).client("s3", endpoint_url=self.url)

    def new_bucket(self) -> str:
        name = f"ollamakit-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc:
            self.log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket, with this process's environment pointing the s3 driver at it. Parts
    are S3's smallest, so that a blob of a few MiB goes up in several."""
    bucket = s3_server.new_bucket()
    for name, value in s3_server.env(bucket).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OLLAMAKIT_S3_PART_SIZE", "5M")
    return bucket


@pytest.fixture(autouse=True)
def _bucket_for_s3_driver(request):
    """Tests parametrized over storage drivers reach ``s3`` with a bucket of their own."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "s3" in callspec.params.values():
        request.getfixturevalue("s3_bucket")


HAPROXY = "/usr/sbin/haproxy"


def haproxy_binary() -> str | None:
    return HAPROXY if Path(HAPROXY).exists() else shutil.which("haproxy")


def requires_haproxy() -> None:
    if haproxy_binary() is None:
        message = "haproxy is not installed (scripts/test.sh installs Debian's haproxy)"
        if os.environ.get("CI"):
            pytest.fail(
                message
            )  # CI runs scripts/test.sh as root: a missing haproxy is a set-up bug
        pytest.skip(message)


class Balancer:
    """HAProxy on a free loopback port in front of ``servers`` ((host, port) pairs): round robin,
    health checks on ``GET /`` every ``check`` seconds (a replica that fails one is out, one
    success brings it back), and a request whose connection fails goes to another replica.
    docs/replicas.md explains each line; production checks less often."""

    def __init__(self, folder: Path, servers: list[tuple[str, int]], check: float = 0.2):
        self.folder = Path(folder)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.servers, self.check = servers, check
        self.proc = None

    def config(self) -> str:
        backends = "".join(
            f"    server replica{i} {host}:{port} check\n"
            for i, (host, port) in enumerate(self.servers)
        )
        inter = f"{int(self.check * 1000)}ms"
        return (
            "global\n    maxconn 1024\n"
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 300s\n    timeout server 300s\n"
            "    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response\n"
            f"frontend ollama\n    bind 127.0.0.1:{self.port}\n    default_backend replicas\n"
            "backend replicas\n    balance roundrobin\n"
            "    option httpchk\n    http-check send meth GET uri /\n    http-check expect status 200\n"
            f"    default-server inter {inter} fall 1 rise 1\n{backends}"
        )

    def start(self, timeout: float = 20.0) -> Balancer:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "haproxy.cfg"
        config.write_text(self.config())
        self.log = open(self.folder / "haproxy.log", "wb")
        self.proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for_port(
            self.proc,
            self.port,
            timeout,
            lambda: RuntimeError(
                f"haproxy exited: {(self.folder / 'haproxy.log').read_text()[-500:]}"
            ),
        )
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc:
            self.log.close()


class KeyTurns:
    """WSGI middleware: whole-object writes to one key take turns (see the module's doc)."""

    def __init__(self, app):
        self.app = app
        self._locks: dict[str, list] = {}  # path -> [lock, users]
        self._guard = threading.Lock()

    def __call__(self, environ, start_response):
        query, method = environ.get("QUERY_STRING", ""), environ["REQUEST_METHOD"]
        whole = (
            (method == "PUT" and "partNumber" not in query)
            or (method == "DELETE" and "uploadId" not in query)
            or (method == "POST" and "uploadId" in query)
        )
        if not whole:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        with self._guard:
            entry = self._locks.setdefault(path, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                # the whole response is made under the lock (moto answers with a list)
                return list(self.app(environ, start_response))
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[path]


def serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = KeyTurns(DomainDispatcherApplication(create_backend_app))
    make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler
    ).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
