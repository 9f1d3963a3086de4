"""A read-only registry over our own store, so one ollamakit pulls from another:

    GET      /v2/                                    API version check
    GET|HEAD /v2/<namespace>/<model>/manifests/<tag or digest>
    GET|HEAD /v2/<namespace>/<model>/blobs/<digest>  with single-range ``Range`` support

``<namespace>/<model>:<tag>`` means the local model of that short name (the default host);
failing that, the one model of that namespace, name and tag under any other host. A blob is
served only to a repository whose manifests reference it.
"""

from __future__ import annotations

import re

from ollamakit import manifest as mf
from ollamakit.digests import is_digest, sha256_digest
from ollamakit.errors import BadRequest
from ollamakit.names import DEFAULT_HOST, ModelName
from ollamakit.web import json_response

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _error(resp, status: int, code: str, message: str) -> None:
    resp.set_header(*API_VERSION)
    json_response(
        resp, {"errors": [{"code": code, "message": message}]}, status, "application/json"
    )


def _repository_manifests(store, namespace: str, model: str):
    """(name parts, bytes) of every stored manifest of ``namespace/model``, any host and tag
    (a corrupt one is left out)."""
    wanted = (namespace.lower(), model.lower())
    for parts, _ in store.storage.list_manifests():
        if (parts[1].lower(), parts[2].lower()) == wanted:
            data = store.storage.read_manifest(parts)
            try:
                mf.Manifest.parse(data or b"")
            except BadRequest:
                continue
            yield parts, data


def find_manifest(store, namespace: str, model: str, reference: str) -> bytes | None:
    if reference.startswith("sha256:"):
        return next(
            (
                d
                for _, d in _repository_manifests(store, namespace, model)
                if sha256_digest(d) == reference
            ),
            None,
        )
    name = ModelName(DEFAULT_HOST, namespace, model, reference)
    if not name.is_valid():
        return None
    local = store.get(name)
    if local is not None:
        return local.manifest_bytes
    others = [
        d
        for p, d in _repository_manifests(store, namespace, model)
        if p[3].lower() == reference.lower()
    ]
    return others[0] if len(others) == 1 else None


class FileRange:
    """A window ``[start, start+length)`` of an open file that reads, seeks and tells within
    the window, so waitress's file wrapper sends exactly it and other servers cannot overrun."""

    def __init__(self, fh, start: int, length: int):
        self.fh, self.start, self.end = fh, start, start + length
        fh.seek(start)

    def read(self, size: int = -1) -> bytes:
        left = self.end - self.fh.tell()
        if left <= 0:
            return b""
        return self.fh.read(left if size is None or size < 0 else min(size, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self.start, 1: self.fh.tell(), 2: self.end}[whence]
        return self.fh.seek(min(max(base + offset, self.start), self.end)) - self.start

    def tell(self) -> int:
        return self.fh.tell() - self.start

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.fh.close()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(start, length) for a satisfiable single range, None to send everything, False for 416."""
    match = _RANGE.match((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None  # absent, multi-range or unknown unit: the whole blob (allowed by RFC 9110)
    first, last = match.groups()
    if first == "":
        length = min(int(last), size)
        return (size - length, length) if length else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end - start + 1


class Base:
    def on_get(self, req, resp):
        resp.set_header(*API_VERSION)
        json_response(resp, {}, 200, "application/json")

    on_head = on_get


class Manifests:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_get(self, req, resp, namespace, model, reference):
        data = find_manifest(self.kernel.store, namespace, model, reference)
        if data is None:
            return _error(resp, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        resp.set_header(*API_VERSION)
        resp.set_header("Docker-Content-Digest", sha256_digest(data))
        resp.content_type = mf.MANIFEST_MEDIA_TYPE
        if req.method == "HEAD":
            resp.content_length = len(data)
        else:
            resp.data = data

    on_head = on_get


class Blobs:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_get(self, req, resp, namespace, model, digest):
        store = self.kernel.store
        referenced = (
            is_digest(digest)
            and digest.startswith("sha256:")
            and any(
                digest in mf.Manifest.parse(data).digests()
                for _, data in _repository_manifests(store, namespace, model)
            )
        )
        size = store.blob_size(digest) if referenced else None
        if size is None:
            return _error(resp, 404, "BLOB_UNKNOWN", "blob unknown to registry")
        resp.set_header(*API_VERSION)
        resp.set_header("Docker-Content-Digest", digest)
        resp.set_header("Accept-Ranges", "bytes")
        resp.content_type = "application/octet-stream"
        window = parse_range(req.get_header("Range"), size)
        if window is False:
            resp.set_header("Content-Range", f"bytes */{size}")
            return _error(resp, 416, "RANGE_NOT_SATISFIABLE", "requested range not satisfiable")
        start, length = window or (0, size)
        if window:
            resp.status = 206
            resp.set_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
        resp.content_length = length
        if req.method != "HEAD":
            resp.stream = FileRange(store.storage.open_blob(digest), start, length)

    on_head = on_get
