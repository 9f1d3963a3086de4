"""``push_model``: a local model to a registry, as a stream of progress objects.

Per blob: HEAD (present: skip), POST an upload (a cross-repository mount when the layer came
from another model on the same registry), PATCH the bytes part by part with ``Content-Range``,
then PUT ``?digest=``. Last, the manifest, byte for byte as stored, so the pulled model keeps
its digest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlencode

from ollamakit.errors import BadRequest, NotFound
from ollamakit.manifest import Layer
from ollamakit.names import ModelName

from .client import Registry, RegistryError, fail, redirect_target
from .parts import Part
from .progress import progress, watch
from .pull import parse_name

CHUNK = 1 << 20
MB = 1000 * 1000


class BlobUpload:
    """One blob going out, on its own thread, watched like a download."""

    def __init__(self, registry: Registry, store, layer: Layer):
        self.registry, self.store, self.layer = registry, store, layer
        self.completed = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> BlobUpload:
        threading.Thread(
            target=self._run, name=f"push {self.layer.digest[7:19]}", daemon=True
        ).start()
        return self

    def _run(self) -> None:
        try:
            url = self._begin()
            if url is not None:
                for part in upload_parts(self.layer.size):
                    url = self._send_part(url, part.offset, part.size)
                self._finish(url)
            self.completed = self.layer.size
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def _begin(self) -> str | None:
        """Start an upload; returns its URL, or None when the registry mounted the blob."""
        query = ""
        source = ModelName.parse(self.layer.from_) if self.layer.from_ else None
        name = self.registry.name
        if (
            source
            and source.host.lower() == name.host.lower()
            and source.repository != name.repository
        ):
            query = "?" + urlencode({"mount": self.layer.digest, "from": source.repository})
        url = self.registry.url("blobs/uploads/") + query
        with self.registry.open("POST", url) as resp:
            if resp.status_code == 201 and query:
                return None
            if resp.status_code != 202:
                raise fail(resp, "push blob")
            location = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
            return redirect_target(url, location)

    def _body(self, offset: int, size: int):
        """A resendable body: the blob's bytes ``[offset, offset+size)``, counted as they go."""

        def chunks():
            sent = 0
            with self.store.storage.open_blob(self.layer.digest) as fh:
                fh.seek(offset)
                while sent < size:
                    block = fh.read(min(CHUNK, size - sent))
                    if not block:
                        raise RegistryError(
                            f"blob {self.layer.digest} is shorter than its manifest says"
                        )
                    sent += len(block)
                    self.completed += len(block)
                    yield block

        def restart():
            self.completed = offset
            return chunks()

        return restart

    def _send_part(self, url: str, offset: int, size: int) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "Content-Range": f"{offset}-{offset + size - 1}",
            "X-Redirect-Uploads": "1",
        }
        with self.registry.open(
            "PATCH", url, headers, self._body(offset, size), follow=False
        ) as resp:
            if resp.status_code == 307:
                # Ollama's extension: the part goes to the redirect (e.g. a signed storage URL).
                target = redirect_target(url, resp.headers.get("Location"))
                put = {k: v for k, v in headers.items() if k != "Content-Range"}
                with self.registry.open(
                    "PUT", target, put, self._body(offset, size), follow=False
                ) as sent:
                    if sent.status_code not in (200, 201, 202, 204):
                        raise fail(sent, "push blob part")
                return url
            if resp.status_code not in (202, 204):
                raise fail(resp, "push blob part")
            location = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
            return redirect_target(url, location) if location else url

    def _finish(self, url: str) -> None:
        url += ("&" if "?" in url else "?") + urlencode({"digest": self.layer.digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        with self.registry.open("PUT", url, headers, b"", follow=False) as resp:
            if resp.status_code not in (201, 204):
                raise fail(resp, "push blob")


def upload_parts(size: int) -> list[Part]:
    """Parts as Ollama sizes them: total/16, clamped to [100 MB, 1000 MB] (none for an empty
    blob: the closing PUT alone creates it)."""
    step = min(max(size // 16, 100 * MB), 1000 * MB)
    return [
        Part(n, offset, min(step, size - offset)) for n, offset in enumerate(range(0, size, step))
    ]


def push_model(kernel, name, insecure: bool = False) -> Iterator[dict]:
    """Push the local model ``name`` to the registry its name points at; yields progress."""
    if name in (None, ""):
        raise BadRequest("model is required")
    name = parse_name(name)
    return _push(kernel, name, insecure or name.scheme == "http")


def _push(kernel, name: ModelName, insecure: bool) -> Iterator[dict]:
    yield {"status": "retrieving manifest"}
    model = kernel.store.get(name)
    if model is None:
        yield {"status": "couldn't retrieve manifest"}
        raise NotFound(f"model '{name}' not found")
    registry = Registry(model.name, insecure)
    try:
        seen = set()
        for layer in (*model.manifest.layers, model.manifest.config):
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            status = f"pushing {layer.digest[7:19]}"
            if registry.has_blob(layer.digest):
                yield progress(status, layer.digest, layer.size, layer.size)
                continue
            upload = BlobUpload(registry, kernel.store, layer).start()
            yield from watch(upload, status, layer.digest, layer.size)
            if upload.error is not None:
                raise upload.error
        yield {"status": "pushing manifest"}
        registry.put_manifest(model.manifest_bytes)
        yield {"status": "success"}
    finally:
        registry.close()
