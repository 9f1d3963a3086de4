"""waitress, taught to receive blob uploads straight into the store.

waitress reads a whole request body into its own spool before the app runs; for a blob upload
the app then read that spool back, hashed it and wrote a second file. Here the parser gives the
body of ``POST /api/blobs/...`` (and of the other requests ``takes_large_body`` names: an archive
import) a ``HashingScratchFile`` instead, and the task hands the app the finished file and its
hash as ``environ[RECEIVED_BODY]``. When the store's driver streams (S3), the blob
upload's body is also fed to the store's writer for the digest its path names while it arrives
(``ForwardingScratchFile``), so the app only commits it. Every other request, and any blob
upload the store cannot give a scratch file for, takes waitress's usual way.

The task also hands the app waitress's client-disconnected check as
``environ[CLIENT_DISCONNECTED]``, so long work can stop when its client leaves.

A request the transport refuses itself (headers past their limit: 431; a body other than a
blob upload past ``OLLAMAKIT_MAX_REQUEST_BODY``: 413, before it is received; a malformed
request: 400) is answered in the API's JSON error shape, and the connection then closes
gracefully (``LingeringClose``) so that the client reads the answer instead of a reset. A body
cut short by a client that half-closes its socket is answered with a 400 before the connection
goes, and its scratch file is removed.

These are subclasses bound to one server (``install``); waitress itself is not patched.
"""

from __future__ import annotations

import json
import socket
import time

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask
from waitress.utilities import Error

from ollamakit.config import DEFAULT_MAX_REQUEST_BODY
from ollamakit.web.auth import UNAUTHORIZED, ApiKeys, challenge, refusal_body
from ollamakit.web.body import too_large_message
from ollamakit.web.disconnect import CLIENT_DISCONNECTED
from ollamakit.web.received import RECEIVED_BODY, takes_large_body, uploaded_blob

from .scratch import HashingScratchFile, ScratchFiles

BLOB_PATH = "/api/blobs/"
# Smaller bodies stay in waitress's memory buffer: a file and two threads would cost more.
MIN_SCRATCH_BODY = 1 << 20
# After refusing a request mid-upload, read (and drop) what the client still sends for this
# long, or this much, so that closing does not reset the connection under the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 << 20
_MESSAGES = {
    431: "request header fields too large",
    413: "request body too large",
    501: "not implemented",
}


class JsonError(Error):
    """A transport-level refusal in the API's shape, ``{"error": message}``."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason = code, reason

    def to_response(self, ident=None):
        body = json.dumps({"error": self.body}).encode()
        return (
            f"{self.code} {self.reason}",
            [("Content-Type", "application/json; charset=utf-8")],
            body,
        )


class KeyRequired(JsonError):
    """A request with a body and without a valid API key, refused before the body is read."""

    def __init__(self, path: str):
        super().__init__(401, "Unauthorized", UNAUTHORIZED)
        self.path = path

    def to_response(self, ident=None):
        body = json.dumps(refusal_body(self.path)).encode()
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("WWW-Authenticate", challenge(self.path)),
        ]
        return f"{self.code} {self.reason}", headers, body


def as_json_error(error: Error) -> JsonError:
    if isinstance(error, JsonError):
        return error
    message = _MESSAGES.get(error.code) or f"{error.reason.lower()}: {error.body}"
    return JsonError(error.code, error.reason, message)


class UploadParser(HTTPRequestParser):
    scratch_files: ScratchFiles
    max_body: int  # for requests other than blob uploads
    api_keys: ApiKeys | None = None  # when the server has keys

    def received(self, data):
        consumed = super().received(data)
        if self.error is not None:
            self.error = as_json_error(self.error)
        return consumed

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        if self.body_rcv is None:
            return
        if self.api_keys is not None and not self.api_keys.allows(
            self.command,
            self.path,
            self.headers.get("AUTHORIZATION"),
            self.headers.get("X_API_KEY"),
        ):
            # The app would refuse it too; refusing now keeps a caller without a key from
            # making the server receive (and store, for an upload) a body of any size.
            self.error = KeyRequired("/" + (self.path or "").lstrip("/"))
            self.completed = True
            return
        if self._is_blob_upload():
            size = None if self.chunked else self.content_length
            body = self.scratch_files.create(uploaded_blob(self.command, self.path or ""), size)
            if body is not None:
                # Both of waitress's receivers (Content-Length, chunked) write to ``.buf``.
                self.body_rcv.buf.close()
                self.body_rcv.buf = body
        elif self.content_length > self.max_body:
            # Refused before a byte of it is spooled (a chunked body is cut off by the app).
            self.error = JsonError(
                413, "Request Entity Too Large", too_large_message(self.max_body)
            )
            self.completed = True

    def _is_blob_upload(self) -> bool:
        if not takes_large_body(self.command, self.path):
            return False
        if self.chunked:
            return True
        return MIN_SCRATCH_BODY <= self.content_length < self.adj.max_request_body_size

    @property
    def scratch_body(self) -> HashingScratchFile | None:
        buf = self.body_rcv.buf if self.body_rcv is not None else None
        return buf if isinstance(buf, HashingScratchFile) else None


class UploadTask(WSGITask):
    def get_environment(self):
        if self.environ is None:
            environ = super().get_environment()  # waits for the hash: wsgi.input reads the file
            # Waitress's own check (true once the connection is closed), under the name the
            # app asks for; it sees a close only with channel_request_lookahead > 0.
            environ[CLIENT_DISCONNECTED] = environ["waitress.client_disconnected"]
            body = self.request.scratch_body
            if body is not None:
                try:
                    environ[RECEIVED_BODY] = body.finish()
                except OSError:
                    pass  # wsgi.input raises it, and the app reports it
        return self.environ


class LingeringClose(HTTPChannel):
    """Closes a connection it refused a request on the graceful way: the answer is sent, the
    sending side shut, and what the client still sends is read and dropped until it closes
    too (or LINGER_SECONDS / LINGER_BYTES pass). Closing with unread bytes would make the
    system reset the connection, and the client would likely lose the answer."""

    _linger_wanted = False
    _linger_until: float | None = None
    _lingered = 0

    def service(self):
        if self.requests and self.requests[0].error is not None:
            self._linger_wanted = True
        super().service()

    def readable(self):
        if self._linger_until is not None:
            if time.monotonic() > self._linger_until:
                self._close_now()
                return False
            return True
        return super().readable()

    def writable(self):
        return False if self._linger_until is not None else super().writable()

    def handle_read(self):
        if self._linger_until is None:
            return super().handle_read()
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            data = b""
        self._lingered += len(data)
        if not data or self._lingered > LINGER_BYTES:
            self._close_now()

    def handle_close(self):
        if self._linger_until is not None:
            return self._close_now()
        if self._linger_wanted and self.connected and self.will_close:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                return self._close_now()
            self._linger_until = time.monotonic() + LINGER_SECONDS
            self.will_close = self.close_when_flushed = False
            return None
        self._answer_body_cut_short()
        return self._close_now()

    def _answer_body_cut_short(self) -> None:
        """The client ended its side with a request body unfinished and nothing else in
        progress: it can still read, so say why the request goes unanswered otherwise."""
        partial = self.request
        if partial is None or not partial.headers_finished or partial.completed or self.requests:
            return
        path = "/" + (partial.path or "").lstrip("/")
        framing = "its last chunk" if partial.chunked else "Content-Length"
        message = f"body ended before {framing}"
        message = (
            f"upload interrupted: {message}" if path.startswith(BLOB_PATH) else f"request {message}"
        )
        status, headers, body = JsonError(400, "Bad Request", message).to_response()
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        try:
            self.socket.send(head.encode() + body)  # small: fits the socket's buffer
        except OSError:
            pass

    def _close_now(self):
        self._linger_until = None
        return super().handle_close()


class UploadChannel(LingeringClose):
    task_class = UploadTask
    scratch_files: ScratchFiles
    max_body: int
    api_keys: ApiKeys | None = None

    def parser_class(self, adj):
        parser = UploadParser(adj)
        parser.scratch_files = self.scratch_files
        parser.max_body = self.max_body
        parser.api_keys = self.api_keys
        return parser

    def del_channel(self, map=None):
        # The connection is gone. A request still being received will never be served: drop
        # its body now (completed requests are closed by ``service`` once their task has run).
        # No lock here: waitress can close a channel from code that holds ``requests_lock``.
        partial = self.request
        if partial is not None:
            partial.close()
        super().del_channel(map)

    def cancel(self):
        # Server shutdown: waitress drops the queued requests without closing them.
        for request in list(self.requests):
            request.close()
        super().cancel()


def install(
    servers,
    scratch_files: ScratchFiles,
    max_body: int = DEFAULT_MAX_REQUEST_BODY,
    api_keys: ApiKeys | None = None,
) -> None:
    """Make every listening server in ``servers`` (waitress's socket map) use these classes;
    ``max_body`` bounds the bodies of requests other than blob uploads; with ``api_keys``, a body
    without a key is refused before it is read."""
    keys = api_keys if api_keys is not None and api_keys.enabled else None
    attributes = {"scratch_files": scratch_files, "max_body": max_body, "api_keys": keys}
    channel = type("UploadChannel", (UploadChannel,), attributes)
    for server in list(servers):
        if isinstance(server, BaseWSGIServer):
            server.channel_class = channel
