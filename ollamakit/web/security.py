"""The DNS-rebinding guard (Host check on loopback listeners) and CORS, as Ollama does them."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from functools import lru_cache

ALLOWED_HEADERS = (
    "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-*"
)
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
_BASE_ORIGINS = [
    f"{scheme}://{host}{port}"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for port in ("", ":*")
] + ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]
_EXTRA_HEADER_PREFIXES = ("x-stainless-",)
_BASIC_HEADERS = {h.strip().lower() for h in ALLOWED_HEADERS.split(",") if "*" not in h}


def is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@lru_cache(maxsize=1)
def _local_addresses() -> frozenset[str]:
    addresses: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    return frozenset(addresses)


def host_allowed(host_header: str | None) -> bool:
    """Whether a request's Host may reach a loopback-bound server."""
    if not host_header:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host in ("localhost", socket.gethostname().lower()) or host.endswith(
            (".localhost", ".local", ".internal")
        )
    return ip.is_loopback or ip.is_private or ip.is_unspecified or host in _local_addresses()


def origin_allowed(origin: str, extra: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(origin, pattern) for pattern in (*extra, *_BASE_ORIGINS))


def headers_allowed(requested: str | None) -> bool:
    for header in (requested or "").split(","):
        header = header.strip().lower()
        if (
            header
            and header not in _BASIC_HEADERS
            and not header.startswith(_EXTRA_HEADER_PREFIXES)
        ):
            return False
    return True


class SecurityMiddleware:
    def __init__(self, settings):
        self.settings = settings
        self.guard_host = is_loopback_host(settings.host)

    def process_request(self, req, resp):
        if self.guard_host and not host_allowed(req.get_header("Host")):
            resp.status = 403
            resp.data = b""
            resp.complete = True
            return
        origin = req.get_header("Origin")
        if origin:
            if not origin_allowed(origin, self.settings.origins):
                resp.status = 403
                resp.data = b""
                resp.complete = True
                return
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Vary", "Origin")


class PreflightMiddleware:
    """Answers ``OPTIONS`` (a CORS preflight, or a plain one) itself; runs after the API key
    check, so that with keys set an ``OPTIONS`` request needs one too."""

    def process_request(self, req, resp):
        origin = req.get_header("Origin")
        if req.method == "OPTIONS":
            if origin and req.get_header("Access-Control-Request-Method"):
                if not headers_allowed(req.get_header("Access-Control-Request-Headers")):
                    resp.status = 403
                    resp.data = b""
                    resp.complete = True
                    return
                resp.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
                resp.set_header(
                    "Access-Control-Allow-Headers",
                    req.get_header("Access-Control-Request-Headers") or ALLOWED_HEADERS,
                )
                resp.set_header("Access-Control-Max-Age", "43200")
            resp.status = 204
            resp.data = b""
            resp.complete = True
