"""Request bodies: JSON decoded with the API's own error messages."""

from __future__ import annotations

import json

from ..errors import BadRequest

MAX_JSON_BODY = 256 * 1024 * 1024


def read_json(req) -> dict:
    """The request body as a JSON object; 400 ``missing request body`` when empty."""
    length = req.content_length
    if length is not None and length > MAX_JSON_BODY:
        raise BadRequest("request body too large")
    raw = req.bounded_stream.read(MAX_JSON_BODY + 1)
    if not raw or not raw.strip():
        raise BadRequest("missing request body")
    if len(raw) > MAX_JSON_BODY:
        raise BadRequest("request body too large")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("invalid character in request body: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {type(body).__name__} into Go value of type object")
    return body


def field(body: dict, key: str, kind, default=None):
    """A typed field: absent or null gives ``default``; the wrong type is a 400."""
    value = body.get(key)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise BadRequest(f"json: cannot unmarshal {type(value).__name__} into field {key} of type {names}")
    return value
