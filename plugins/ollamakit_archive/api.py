"""``POST /api/export`` (a model as an archive) and ``POST /api/import`` (an archive into the store)."""

from __future__ import annotations

import logging
import threading

from ollamakit.errors import BadRequest, NotFound
from ollamakit.names import ModelName
from ollamakit.web import json_response, read_json

from . import layout
from .unpack import import_archive

log = logging.getLogger(__name__)
TAR_MEDIA_TYPE = "application/x-tar"
# One import at a time: a failed import removes the blobs it added, which must not be ones a
# concurrent import of the same model found already there and is about to name in a manifest.
_IMPORTING = threading.Lock()


def _model_names(body: dict) -> list[str]:
    """``model``: one name, or ``models``: a list of them."""
    names = body.get("models", [body.get("model")] if "model" in body else None)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise BadRequest("model is required")
    if len(names) > 256:
        raise BadRequest("too many models")
    return names


class Export:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        store = self.kernel.store
        models = []
        for text in _model_names(read_json(req)):
            name = ModelName.parse(text)
            if name is None:
                raise BadRequest(f"invalid model name {text[:200]!r}")
            model = store.get(name)
            if model is None:
                raise NotFound(f"model '{text}' not found")
            models.append((model.name.display_full(), model.manifest_bytes))
        entries = layout.entries(store, models)
        for entry in entries:
            if entry.digest is not None and store.blob_size(entry.digest) != entry.size:
                raise NotFound(f"blob {entry.digest} of a model is missing or damaged in the store")
        resp.content_type = TAR_MEDIA_TYPE
        resp.content_length = layout.archive_size(entries)
        resp.stream = layout.stream(store, entries)


class Import:
    """The body is the tar (any length: the transport streams it to a scratch file, see
    ``ollamakit.web.received.takes_large_body``). Answers the names of the models recorded.

    ``?name=NEW`` records the archive's one model under ``NEW`` instead of the name it carries
    (the body is the tar, so the name travels in the query)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        if not req.content_length and req.get_header("Transfer-Encoding") is None:
            raise BadRequest("missing request body: send the archive")
        rename = None
        text = req.get_param("name")
        if text is not None:
            rename = ModelName.parse(text)
            if rename is None:
                raise BadRequest(f"invalid model name {text[:200]!r}")
        with _IMPORTING:
            names = import_archive(self.kernel.store, req.bounded_stream, rename)
        log.info("imported %s", ", ".join(str(name) for name in names))
        json_response(
            resp, {"status": "success", "models": [name.display_shortest() for name in names]}
        )
