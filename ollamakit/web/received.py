"""Request bodies a transport has already received into a file and hashed.

A transport may write a large body straight to a scratch file of the store while hashing it as
it arrives, instead of handing the app a stream to copy and hash a second time. It then puts a
``ReceivedBody`` in the WSGI environ under ``RECEIVED_BODY``; ``wsgi.input`` still reads the
same bytes for apps that do not know the key. Only complete bodies are handed over: an upload
cut off midway never reaches the app. The transport owns the file and removes it after the
response, unless the app moved it away first (``ModelStore.adopt_blob``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..blobs import BlobWriter
from ..digests import is_digest

RECEIVED_BODY = "ollamakit.received_body"
# The requests whose bodies are as large as a model: a blob upload and an archive import. A
# transport streams them to a scratch file rather than holding them in memory, and
# ``OLLAMAKIT_MAX_REQUEST_BODY`` does not bound them.
LARGE_BODY_PREFIXES = ("/api/blobs/",)
LARGE_BODY_PATHS = ("/api/import",)


def takes_large_body(method: str, path: str) -> bool:
    path = "/" + path.lstrip("/")
    return method == "POST" and (
        path.startswith(LARGE_BODY_PREFIXES) or path.rstrip("/") in LARGE_BODY_PATHS
    )


def uploaded_blob(method: str, path: str) -> str | None:
    """The digest a blob upload (``POST /api/blobs/<digest>``) names; None for any other
    request, or a path that names no digest (the app refuses it)."""
    path = "/" + path.lstrip("/")
    name = path[len(LARGE_BODY_PREFIXES[0]) :]
    if method != "POST" or not path.startswith(LARGE_BODY_PREFIXES[0]) or not is_digest(name):
        return None
    return "sha256:" + name[7:]


@dataclass(frozen=True)
class ReceivedBody:
    path: Path  # in the storage driver's scratch_dir(), so the store can link it in
    size: int
    sha256: str  # lowercase hex of exactly the bytes in ``path``
    # For a store that streams (``Storage.streams_uploads``): the writer of the blob the
    # upload names, already fed exactly these bytes, waiting for the app's ``commit()``. The
    # transport aborts it after the response if the app did not commit it.
    blob: BlobWriter | None = None


def received_body(req) -> ReceivedBody | None:
    """The already-received body of a Falcon request, or None when the transport gave none."""
    body = req.env.get(RECEIVED_BODY)
    return body if isinstance(body, ReceivedBody) else None
