"""Fetching one byte range of a blob into the partial file.

The bulk bytes go through the standard library's ``http.client`` with ``readinto`` and
``os.pwrite``: on this kind of machine that moves a loopback blob about three times faster than
streaming the same reply through httpx (writing through a memory map instead was slower still:
a page fault per 4 KiB), and both calls release the GIL, so parallel parts really overlap. When an HTTP proxy is configured for the URL, httpx (which honours proxies)
fetches instead.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.request
from urllib.parse import urlsplit

import httpx

from ollamakit.errors import OllamaError

from .client import ProtocolViolation, RegistryError
from .wire import TIMEOUT, USER_AGENT, body_text, tls_context

PIECE = 1 << 20  # bytes received between progress reports
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class HTTPStatusError(RegistryError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.code = status


def _uses_proxy(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
        parts.hostname or ""
    )


def check_reply(status: int, headers, start: int, length: int, total: int, ranged: bool) -> None:
    """Refuse any reply that is not exactly the bytes we asked for."""
    end = start + length - 1
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", "") or "")
        if (
            not match
            or (int(match.group(1)), int(match.group(2))) != (start, end)
            or match.group(3) not in ("*", str(total))
        ):
            raise ProtocolViolation(
                f"registry answered range {start}-{end} with {headers.get('Content-Range')!r}"
            )
    elif status == 200:
        if ranged or start != 0 or length != total:
            raise ProtocolViolation(f"registry ignored the range {start}-{end}")
    else:
        raise HTTPStatusError(status, f"blob fetch: unexpected status code {status}")
    declared = headers.get("Content-Length")
    if declared is not None and declared.strip() != str(length):
        raise ProtocolViolation(
            f"registry sent Content-Length {declared} for a {length}-byte range"
        )
    if (headers.get("Content-Encoding") or "identity").lower() != "identity":
        raise ProtocolViolation("registry compressed a blob we asked for as identity")


def write(fd: int, data, offset: int) -> None:
    try:
        os.pwrite(fd, data, offset)
    except OSError as exc:
        raise OllamaError(f"cannot write the partial download: {exc.strerror}") from None


class RangeFetcher:
    """Fetches ranges for one worker thread, keeping its connection alive between parts."""

    def __init__(self):
        self._conn: http.client.HTTPConnection | None = None
        self._key = None
        self._buffer = memoryview(bytearray(PIECE))
        self._httpx: httpx.Client | None = None

    def close(self) -> None:
        if self._conn:
            self._conn.close()
            self._conn = None
        if self._httpx:
            self._httpx.close()
            self._httpx = None

    def fetch(
        self,
        url: str,
        auth: dict,
        fd: int,
        start: int,
        length: int,
        total: int,
        ranged: bool,
        progress,
    ) -> None:
        """Write bytes ``[start, start+length)`` of the blob into the partial file ``fd``,
        calling ``progress(offset, data)`` after each piece."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **auth}
        if ranged:
            headers["Range"] = f"bytes={start}-{start + length - 1}"
        if _uses_proxy(url):
            return self._fetch_httpx(url, headers, fd, start, length, total, ranged, progress)
        resp = self._request(url, headers)
        try:
            check_reply(resp.status, resp.headers, start, length, total, ranged)
            offset, end = start, start + length
            while offset < end:
                n = resp.readinto(self._buffer[: min(PIECE, end - offset)])
                if not n:
                    raise RegistryError(
                        f"connection closed after {offset - start} of {length} bytes"
                    )
                write(fd, self._buffer[:n], offset)
                progress(offset, self._buffer[:n])
                offset += n
            if resp.read(1):
                raise ProtocolViolation(f"registry sent more than the {length} bytes asked for")
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a reset, a stall past the read timeout: the part is retried
            raise RegistryError(f"blob fetch: {exc or type(exc).__name__}") from None
        except BaseException:
            self.close()  # the connection is in an unknown state
            raise
        if resp.will_close:
            self.close()

    def _request(self, url: str, headers: dict) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if self._conn is None or self._key != key:
            self.close()
            timeout = TIMEOUT.read
            if parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=timeout, context=tls_context()
                )
            else:
                self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            self._key = key
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            self._conn.request("GET", path, headers=headers)
            resp = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RegistryError(f"blob fetch: {exc or type(exc).__name__}") from None
        if resp.status not in (200, 206):
            message = f"blob fetch: unexpected status code {resp.status}: {resp.read(512).decode('utf-8', 'replace')}"
            self.close()
            raise HTTPStatusError(resp.status, message)
        return resp

    def _fetch_httpx(self, url, headers, fd, start, length, total, ranged, progress) -> None:
        if self._httpx is None:
            self._httpx = httpx.Client(
                timeout=TIMEOUT, follow_redirects=False, verify=tls_context()
            )
        try:
            self._stream_httpx(url, headers, fd, start, length, total, ranged, progress)
        except httpx.HTTPError as exc:
            raise RegistryError(f"blob fetch: {exc or type(exc).__name__}") from None

    def _stream_httpx(self, url, headers, fd, start, length, total, ranged, progress) -> None:
        with self._httpx.stream("GET", url, headers=headers) as resp:
            if resp.status_code not in (200, 206):
                raise HTTPStatusError(
                    resp.status_code,
                    f"blob fetch: unexpected status code {resp.status_code}: {body_text(resp)}",
                )
            check_reply(resp.status_code, resp.headers, start, length, total, ranged)
            offset = start
            for chunk in resp.iter_raw(PIECE):
                if offset + len(chunk) > start + length:
                    raise ProtocolViolation(f"registry sent more than the {length} bytes asked for")
                write(fd, chunk, offset)
                progress(offset, memoryview(chunk))
                offset += len(chunk)
            if offset != start + length:
                raise RegistryError(f"connection closed after {offset - start} of {length} bytes")
