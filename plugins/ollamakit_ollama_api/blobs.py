"""``HEAD|POST /api/blobs/{digest}``: uploads streamed to disk while hashed.

A transport that has already received the body into a scratch file and hashed it (the ``http``
transport does for large uploads) hands it over as a ``ReceivedBody``; the store then only
checks the digest and links the file in. For a store that streams (S3), the transport has fed
the body to the blob's writer as it arrived, and committing it is all that is left. Otherwise
the body is read, hashed and written here, through the storage's blob writer.
"""

from __future__ import annotations

from ollamakit.digests import parse_digest
from ollamakit.errors import BadRequest
from ollamakit.web.received import received_body

CHUNK = 4 << 20


def _body_chunks(req):
    """The request body in chunks; a body shorter than its Content-Length is an error, so an
    upload cut off midway never becomes a blob."""
    remaining = req.content_length
    stream = req.bounded_stream
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk
    if remaining:
        raise BadRequest("upload interrupted: body shorter than Content-Length")


class Blob:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_head(self, req, resp, digest):
        digest = parse_digest(digest)
        resp.status = 200 if self.kernel.store.has_blob(digest) else 404

    def on_post(self, req, resp, digest):
        digest = parse_digest(digest)
        if self.kernel.store.has_blob(digest):
            resp.status = 200
            return
        received = received_body(req)
        if received is not None and received.blob is not None and received.blob.digest == digest:
            created = received.blob.commit()  # streamed to the store as it arrived
        elif received is not None:
            created = self.kernel.store.adopt_blob(digest, received.path, received.sha256)
        else:
            created = self.kernel.store.write_blob(digest, _body_chunks(req), req.content_length)
        resp.status = 201 if created else 200
