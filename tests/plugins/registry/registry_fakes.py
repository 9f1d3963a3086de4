"""A small registry server we control completely, to play the hostile or unusual registry:
wrong bytes, too many bytes, redirects (loops, or to another host), no Range support, slow
bodies, bearer challenges. It counts the blob bytes it sends and records every request."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ollamakit import manifest as mf

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def model_manifest(
    layer: bytes, config: bytes = b'{"model_format":"gguf"}', layer_size: int | None = None
) -> bytes:
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, sha(config), len(config)),
        [mf.Layer(mf.MODEL, sha(layer), len(layer) if layer_size is None else layer_size)],
    )
    return manifest.to_bytes()


class FakeRegistry:
    def __init__(self):
        self.manifests: dict[str, bytes] = {}  # "ns/model:tag" -> bytes
        self.blobs: dict[str, bytes] = {}  # digest -> the bytes we choose to send for it
        self.ranges = True
        self.extra = b""  # sent after a blob's bytes
        self.declare_length = True
        self.redirect: str | None = None  # "loop", or a base URL to send blob GETs to (307)
        self.throttle: float | None = None  # bytes per second per connection
        self.drop_after: int | None = None  # once: hang up after sending this many blob bytes
        self.bearer: str | None = None  # a token: then every /v2 request needs it
        self.requests: list[tuple[str, str, dict]] = []
        self.blob_bytes_sent = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.host}"

    def add_model(
        self,
        name: str,
        layer: bytes,
        config: bytes = b'{"model_format":"gguf"}',
        manifest: bytes | None = None,
    ):
        """Serve ``ns/model:tag`` with one model layer; returns the manifest bytes."""
        data = manifest or model_manifest(layer, config)
        self.manifests[name] = data
        self.blobs[sha(layer)] = layer
        self.blobs[sha(config)] = config
        return data

    def start(self) -> FakeRegistry:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except OSError:
                    pass  # the client hung up mid-reply, as it should on a reply it refuses

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                registry.requests.append((self.command, self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if path == "/token":
                    return self._send(200, json.dumps({"token": registry.bearer}).encode())
                if path.startswith("/loop/"):
                    step = int(path.rsplit("/", 1)[1]) + 1
                    return self._send(307, headers={"Location": f"/loop/{step}"})
                if path.startswith("/cdn/"):
                    return self._blob(path.rsplit("/", 1)[1])
                if (
                    registry.bearer
                    and self.headers.get("Authorization") != f"Bearer {registry.bearer}"
                ):
                    challenge = f'Bearer realm="{registry.url}/token",service="fake",scope="repository:x:pull"'
                    return self._send(401, b'{"errors":[]}', {"WWW-Authenticate": challenge})
                match = re.match(r"^/v2/([^/]+/[^/]+)/(manifests|blobs)/(.+)$", path)
                if path == "/v2/":
                    return self._send(200, b"{}")
                if not match:
                    return self._send(404, b"not found")
                repo, kind, ref = match.groups()
                if kind == "manifests":
                    data = registry.manifests.get(f"{repo}:{ref}")
                    if data is None:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                    return self._send(200, data, {"Content-Type": mf.MANIFEST_MEDIA_TYPE})
                if registry.redirect == "loop":
                    return self._send(307, headers={"Location": "/loop/0"})
                if registry.redirect:
                    return self._send(307, headers={"Location": f"{registry.redirect}/cdn/{ref}"})
                return self._blob(ref)

            def _blob(self, digest):
                data = registry.blobs.get(digest)
                if data is None:
                    return self._send(404, b"blob unknown")
                start, end, status = 0, len(data) - 1, 200
                match = _RANGE.match(self.headers.get("Range", ""))
                if registry.ranges and match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)) if match.group(2) else end, end)
                    status = 206
                body = data[start : end + 1] + registry.extra
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                if registry.declare_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command == "HEAD":
                    return
                step = 256 * 1024
                with registry._lock:
                    drop = registry.drop_after
                    if drop is not None and len(body) > drop:
                        registry.drop_after = None
                    else:
                        drop = None
                if drop is not None:
                    body = body[:drop]
                    self.close_connection = True
                for offset in range(0, len(body), step):
                    chunk = body[offset : offset + step]
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        return
                    with registry._lock:
                        registry.blob_bytes_sent += len(chunk)
                    if registry.throttle:
                        time.sleep(len(chunk) / registry.throttle)

        return Handler
