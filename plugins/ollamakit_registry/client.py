"""A client for one repository on an OCI (Docker distribution v2) registry.

It follows redirects by hand, bounded, so credentials go only to the registry's own host and a
redirect cannot downgrade https to http; it answers 401 challenges once per request; and it
reads every reply with a size limit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from ollamakit.errors import OllamaError
from ollamakit.manifest import MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES
from ollamakit.names import ModelName

from .auth import Authenticator, Unauthorized
from .wire import body_text, make_client, read_bounded

MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class RegistryError(OllamaError):
    """The registry answered something we cannot use."""


class ProtocolViolation(RegistryError):
    """The registry broke the protocol (sizes, ranges): retrying will not help."""


@dataclass
class BlobLocation:
    """Where a blob's bytes are fetched from, after the registry's redirects."""

    url: str
    ranged: bool  # whether the server answers Range requests with 206


def redirect_target(current: str, location: str | None) -> str:
    if not location:
        raise RegistryError("http: no Location header in response")
    target = urljoin(current, location.strip())
    scheme = urlsplit(target).scheme
    if scheme not in ("http", "https"):
        raise RegistryError(f"refusing redirect to a {scheme or 'relative'} URL")
    if scheme == "http" and urlsplit(current).scheme == "https":
        raise RegistryError("insecure protocol http")
    return target


def fail(resp: httpx.Response, what: str) -> RegistryError:
    """The error for an unexpected reply, in Ollama's words."""
    if resp.status_code == 404:
        return RegistryError(f"{what}: file does not exist")
    return RegistryError(f"{what}: {resp.status_code}: {body_text(resp)}")


class Registry:
    """``<scheme>://<host>/v2/<namespace>/<model>/...`` for one model name."""

    def __init__(self, name: ModelName, insecure: bool = False, auth_value: str | None = None):
        self.name = name
        self.insecure = insecure
        self.base = f"{'http' if insecure else 'https'}://{name.host}"
        self.client = make_client()
        self.auth = Authenticator(self.client, self.base)
        if auth_value:
            self.auth.value = auth_value
        self._auth_lock = threading.Lock()

    def clone(self) -> Registry:
        """A registry with its own connections and the current credentials, for a worker."""
        return Registry(self.name, self.insecure, self.auth.value)

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name.repository}/{path}"

    # -- requests ------------------------------------------------------------------------------

    def is_registry_url(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.netloc.lower() == self.auth.host and parts.scheme == self.auth.scheme

    def renew_auth(self, challenge: str | None, stale: str | None) -> None:
        """Answer a challenge, once across threads: whoever comes second reuses the answer."""
        with self._auth_lock:
            if self.auth.value == stale or stale is None:
                self.auth.answer(challenge)

    def send(self, method: str, url: str, headers: dict | None = None, body=None) -> httpx.Response:
        """One request (streamed reply); a 401 from the registry is answered and retried once.

        ``body`` is bytes or a callable returning an iterator of bytes, so it can be resent.
        """
        for attempt in range(2):
            used = self.auth.value
            merged = {**(headers or {}), **self.auth.headers_for(url)}
            content = body() if callable(body) else body
            try:
                resp = self.client.send(
                    self.client.build_request(method, url, headers=merged, content=content),
                    stream=True,
                )
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"{method} {_short(url)}: {exc or type(exc).__name__}"
                ) from None
            if resp.status_code != 401 or not self.is_registry_url(url):
                return resp
            challenge = resp.headers.get("WWW-Authenticate")
            resp.close()
            if attempt == 1:
                raise Unauthorized("unauthorized: access denied")
            self.renew_auth(challenge, used)
        raise AssertionError("unreachable")

    @contextmanager
    def open(
        self, method: str, url: str, headers: dict | None = None, body=None, follow: bool = True
    ):
        """``send``, following up to ``MAX_REDIRECTS`` redirects for GET and HEAD."""
        resp = self.send(method, url, headers, body)
        try:
            hops = 0
            while follow and method in ("GET", "HEAD") and resp.status_code in REDIRECTS:
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise RegistryError(f"stopped after {MAX_REDIRECTS} redirects")
                url = redirect_target(url, resp.headers.get("Location"))
                resp.close()
                resp = self.send(method, url, headers, body)
            yield resp
        finally:
            resp.close()

    # -- pull ----------------------------------------------------------------------------------

    def get_manifest(self) -> tuple[bytes, str | None]:
        """The manifest's bytes and the digest the registry claims for them."""
        accept = {"Accept": MANIFEST_MEDIA_TYPE}
        with self.open("GET", self.url(f"manifests/{self.name.tag}"), accept) as resp:
            if resp.status_code != 200:
                raise fail(resp, "pull model manifest")
            data = read_bounded(resp, MAX_MANIFEST_BYTES, "manifest")
            return data, resp.headers.get("Docker-Content-Digest")

    def get_small_blob(self, digest: str, size: int) -> bytes:
        """A small blob (a config, a template) in one request, redirects followed."""
        with self.open("GET", self.url(f"blobs/{digest}"), {"Accept-Encoding": "identity"}) as resp:
            if resp.status_code != 200:
                raise fail(resp, "pull model blob")
            data = bytearray()
            for chunk in resp.iter_raw():
                data += chunk
                if len(data) > size:
                    raise ProtocolViolation(
                        f"registry sent more than the {size} bytes of blob {digest}"
                    )
        if len(data) != size:
            raise RegistryError(f"registry sent {len(data)} of the {size} bytes of blob {digest}")
        return bytes(data)

    def locate_blob(self, digest: str, size: int) -> BlobLocation:
        """Follow the blob's redirects (a plain registry answers 200, a CDN-backed one 307) and
        learn whether ranges work, with a one-byte request."""
        if size == 0:
            return BlobLocation(self.url(f"blobs/{digest}"), False)
        headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
        with self.open("GET", self.url(f"blobs/{digest}"), headers) as resp:
            if resp.status_code == 206:
                total = resp.headers.get("Content-Range", "").rpartition("/")[2]
                if total.isdigit() and int(total) != size:
                    raise ProtocolViolation(
                        f"registry says blob {digest} has {total} bytes, the manifest says {size}"
                    )
                return BlobLocation(str(resp.url), True)
            if resp.status_code == 200:
                length = resp.headers.get("Content-Length", "")
                if length.isdigit() and int(length) != size:
                    raise ProtocolViolation(
                        f"registry says blob {digest} has {length} bytes, the manifest says {size}"
                    )
                return BlobLocation(str(resp.url), False)
            raise fail(resp, "pull model blob")

    # -- push ----------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        with self.open("HEAD", self.url(f"blobs/{digest}")) as resp:
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            raise fail(resp, "check blob")

    def put_manifest(self, data: bytes) -> None:
        headers = {"Content-Type": MANIFEST_MEDIA_TYPE}
        with self.open("PUT", self.url(f"manifests/{self.name.tag}"), headers, data) as resp:
            if resp.status_code not in (200, 201, 202):
                raise fail(resp, "push manifest")


def _short(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
