"""A small HTTP client for the commands: the server address comes from ``OLLAMA_HOST`` as for
``ollama``, and every failure becomes a ``click`` error with the server's own message."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ollamakit.cli.address import server_url  # noqa: F401 (re-exported: the commands and tests use it here)
from ollamakit.config import client_api_key

if TYPE_CHECKING:
    import httpx

UPLOAD_CHUNK = 1 << 20
MAX_ERROR_BODY = 64 * 1024  # an error reply longer than this is cut, not read whole
MAX_STREAM_LINE = 1 << 20  # one NDJSON progress object is small


class ApiError(click.ClickException):
    """The server said no (``status`` is the HTTP status, -1 inside a stream), or is absent."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, base_url: str | None = None, transport: httpx.BaseTransport | None = None):
        import httpx  # imported here: the CLI starts (and ``--help`` answers) without it

        self.base_url = base_url or server_url()
        # Creates and uploads can run for minutes: only connecting has a deadline.
        timeout = httpx.Timeout(None, connect=10.0)
        key = client_api_key()  # a server with API keys needs one on every request
        headers = {"Authorization": f"Bearer {key}"} if key else None
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing

    def _transmit(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        """The server's answer, whatever its status; only a failure to reach it is an error."""
        import httpx

        try:
            return self.http.send(request, stream=stream)
        except httpx.ConnectError:
            raise ApiError(
                f"could not connect to the ollamakit server at {self.base_url}; start it with 'ollamakit serve'"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(f"{type(exc).__name__}: {exc}") from None

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        response = self._transmit(request, stream)
        if response.status_code >= 400:
            body = _read_limited(response)
            response.close()
            raise ApiError(_error_message(body, response.status_code), response.status_code)
        return response

    def answer(self, method: str, path: str) -> httpx.Response:
        """The reply to a small request, error statuses included, for a caller that reads them."""
        return self._transmit(self.http.build_request(method, path))

    def request(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return self._send(self.http.build_request(method, path, json=body))

    def json(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.request(method, path, body)
        try:
            value = response.json()
        except ValueError:
            raise ApiError(
                f"the server sent a reply that is not JSON: {response.text[:200]!r}"
            ) from None
        if not isinstance(value, dict):
            raise ApiError("the server sent an unexpected reply")
        return value

    def stream(self, path: str, body: dict) -> Iterator[dict]:
        """POST ``body`` and yield each NDJSON object; an ``error`` object raises."""
        import httpx

        response = self._send(self.http.build_request("POST", path, json=body), stream=True)
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                if len(line) > MAX_STREAM_LINE:
                    raise ApiError("the server sent a progress line that is too long")
                try:
                    message = json.loads(line)
                except ValueError:
                    raise ApiError(
                        f"the server sent a line that is not JSON: {line[:200]!r}"
                    ) from None
                if isinstance(message, dict) and message.get("error"):
                    raise ApiError(str(message["error"]), -1)
                if isinstance(message, dict):
                    yield message
        except httpx.HTTPError as exc:
            raise ApiError(f"the connection to the server broke: {exc}") from None
        finally:
            response.close()

    # -- the API

    def has_blob(self, digest: str) -> bool:
        try:
            self.request("HEAD", f"/api/blobs/{digest}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def upload_blob(
        self, digest: str, path: Path, size: int, on_progress: Callable[[int], None] | None = None
    ) -> None:
        """Stream the file at ``path`` to ``/api/blobs/<digest>``; the server re-hashes it."""

        def chunks():
            sent = 0
            with open(path, "rb") as fh:
                while block := fh.read(UPLOAD_CHUNK):
                    yield block
                    sent += len(block)
                    if on_progress:
                        on_progress(sent)

        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        self._send(
            self.http.build_request(
                "POST", f"/api/blobs/{digest}", content=chunks(), headers=headers
            )
        )

    def create(self, request: dict) -> Iterator[dict]:
        return self.stream("/api/create", {**request, "stream": True})

    def tags(self) -> list[dict]:
        models = self.json("GET", "/api/tags").get("models")
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []

    def show(self, model: str, verbose: bool = False) -> dict:
        body = {"model": model, **({"verbose": True} if verbose else {})}
        return self.json("POST", "/api/show", body)

    def copy(self, source: str, destination: str) -> None:
        self.request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self.request("DELETE", "/api/delete", {"model": model})


def _read_limited(response: httpx.Response) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_ERROR_BODY:
            return data[:MAX_ERROR_BODY]
    return data


def _error_message(body: bytes, status: int) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get("error"):
        return str(value["error"])
    text = body.decode("utf-8", "replace").strip()
    return text or f"the server answered {status}"
