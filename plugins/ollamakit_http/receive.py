"""waitress, taught to receive blob uploads straight into the store.

waitress reads a whole request body into its own spool before the app runs; for a blob upload
the app then read that spool back, hashed it and wrote a second file. Here the parser gives the
body of ``POST /api/blobs/...`` a ``HashingScratchFile`` instead, and the task hands the app the
finished file and its hash as ``environ[RECEIVED_BODY]``. Every other request, and any blob
upload the store cannot give a scratch file for, takes waitress's usual way.

The task also hands the app waitress's client-disconnected check as
``environ[CLIENT_DISCONNECTED]``, so long work can stop when its client leaves.

These are subclasses bound to one server (``install``); waitress itself is not patched.
"""

from __future__ import annotations

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask

from ollamakit.web.disconnect import CLIENT_DISCONNECTED
from ollamakit.web.received import RECEIVED_BODY

from .scratch import HashingScratchFile, ScratchFiles

BLOB_PATH = "/api/blobs/"
# Smaller bodies stay in waitress's memory buffer: a file and two threads would cost more.
MIN_SCRATCH_BODY = 1 << 20


class UploadParser(HTTPRequestParser):
    scratch_files: ScratchFiles

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        if self.body_rcv is not None and self._is_blob_upload():
            body = self.scratch_files.create()
            if body is not None:
                # Both of waitress's receivers (Content-Length, chunked) write to ``.buf``.
                self.body_rcv.buf.close()
                self.body_rcv.buf = body

    def _is_blob_upload(self) -> bool:
        path = "/" + self.path.lstrip("/")
        if self.command != "POST" or not path.startswith(BLOB_PATH):
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


class UploadChannel(HTTPChannel):
    task_class = UploadTask
    scratch_files: ScratchFiles

    def parser_class(self, adj):
        parser = UploadParser(adj)
        parser.scratch_files = self.scratch_files
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


def install(servers, scratch_files: ScratchFiles) -> None:
    """Make every listening server in ``servers`` (waitress's socket map) use these classes."""
    channel = type("UploadChannel", (UploadChannel,), {"scratch_files": scratch_files})
    for server in list(servers):
        if isinstance(server, BaseWSGIServer):
            server.channel_class = channel
