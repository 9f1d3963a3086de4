"""Replies: plain JSON, and NDJSON streams whose first error still sets the HTTP status."""

from __future__ import annotations

import functools

import json
import logging
import re

from ..errors import INTERNAL_ERROR, OllamaError

log = logging.getLogger("ollamakit.web")

JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


# Go's encoding/json (every Ollama reply) writes these as escapes inside strings; so do we, so
# that a reply is the same bytes (a template's ``<|im_start|>``, say)
GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


ESCAPED = re.compile("[<>&\u2028\u2029]")  # most chunks have none: a search is cheaper


def dumps(obj) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (text.translate(GO_ESCAPES) if ESCAPED.search(text) else text).encode()


def json_response(resp, obj, status: int = 200, content_type: str = JSON) -> None:
    resp.status = status
    resp.content_type = content_type
    resp.data = dumps(obj)


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and client-facing message of an error: its own for an ``OllamaError``,
    else 500 with a generic message (the detail goes to the log, never to the client)."""
    if isinstance(exc, OllamaError):
        return exc.status, exc.message
    log.error("unexpected error", exc_info=exc)
    return 500, INTERNAL_ERROR


def error_body(exc: BaseException) -> tuple[int, dict]:
    status, message = error_status(exc)
    return status, {"error": message}


def stream_response(resp, events, stream: bool = True, final=None) -> None:
    """Send an iterator of dicts.

    Streaming: NDJSON, one object per line, flushed per object. An error raised before the
    first object becomes the HTTP status with a JSON body; after it, a last ``{"error"}`` line.
    Not streaming: ``final(list_of_objects)`` (default: the last object) as one JSON reply,
    and any error as its status.
    """
    events = iter(events)
    try:
        first = next(events)
    except StopIteration:
        first = None
    except Exception as exc:
        status, body = error_body(exc)
        json_response(resp, body, status, "application/json")
        return
    if not stream:
        collected = [] if first is None else [first]
        try:
            collected.extend(events)
        except Exception as exc:
            status, body = error_body(exc)
            json_response(resp, body, status, "application/json")
            return
        result = final(collected) if final else (collected[-1] if collected else {})
        json_response(resp, result, 200, "application/json")
        return

    def lines():
        if first is not None:
            yield dumps(first) + b"\n"
        try:
            for event in events:
                yield dumps(event) + b"\n"
        except Exception as exc:
            yield dumps(error_body(exc)[1]) + b"\n"
        finally:
            close = getattr(events, "close", None)
            if close:
                close()

    resp.status = 200
    resp.content_type = NDJSON
    resp.stream = lines()


def sse_frame(data, event: str | None = None) -> bytes:
    """One Server-Sent Event: an optional ``event:`` line, then ``data:`` (an object as JSON)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + (data if isinstance(data, bytes) else dumps(data)) + b"\n\n"


def sse_response(resp, frames, envelope, error_frame) -> None:
    """Send an iterator of SSE frames (bytes), flushed one by one.

    An error raised before the first frame is a plain JSON reply, ``envelope(exc)`` giving its
    status and body; after it, the stream ends with ``error_frame(exc)``. Both let each API
    speak its own error shape.
    """
    frames = iter(frames)
    try:
        first = next(frames)
    except StopIteration:
        first = b""
    except Exception as exc:
        status, body = envelope(exc)
        json_response(resp, body, status, "application/json")
        return

    def stream():
        try:
            yield first
            yield from frames
        except Exception as exc:
            yield error_frame(exc)
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()

    resp.status = 200
    resp.content_type = SSE
    resp.set_header("Cache-Control", "no-cache")
    resp.stream = stream()


def errors_in_envelope(envelope):
    """A responder decorator for an API whose errors are not Ollama's ``{"error": message}``:
    whatever the handler raises is answered with ``envelope(exc)``'s ``(status, body)``."""

    def decorate(handler):
        @functools.wraps(handler)
        def wrapped(self, req, resp, *args, **kwargs):
            try:
                return handler(self, req, resp, *args, **kwargs)
            except Exception as exc:
                status, body = envelope(exc)
                json_response(resp, body, status, "application/json")

        return wrapped

    return decorate
