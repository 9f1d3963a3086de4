"""Request bodies: JSON decoded with the API's own error messages."""

from __future__ import annotations

import itertools
import json
import re

from ..config import DEFAULT_MAX_REQUEST_BODY
from ..errors import BadRequest, TooLarge

MAX_JSON_BODY = DEFAULT_MAX_REQUEST_BODY  # unless the app sets the server's (BodyLimit)

# A ``\u`` escape of a UTF-16 surrogate; only a body holding one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyLimit:
    """Middleware: hands ``read_json`` the server's ``max_request_body``."""

    def __init__(self, settings):
        self.limit = settings.max_request_body

    def process_request(self, req, resp):
        req.context.max_request_body = self.limit


def read_json(req) -> dict:
    """The request body as a JSON object; 400 ``missing request body`` when empty, 413 past
    ``OLLAMAKIT_MAX_REQUEST_BODY``."""
    limit = getattr(req.context, "max_request_body", MAX_JSON_BODY)
    length = req.content_length
    if length is not None and length > limit:
        raise TooLarge(too_large_message(limit))
    raw = req.bounded_stream.read(limit + 1)
    req.context.raw_body = raw  # for OLLAMA_DEBUG_LOG_REQUESTS (request_log.py)
    return parse_json(raw, limit)


def parse_json(raw: bytes, limit: int = MAX_JSON_BODY) -> dict:
    """A body already read (or decompressed) as a JSON object, with ``read_json``'s errors
    (413 past ``limit`` bytes)."""
    if not raw or not raw.strip():
        raise BadRequest("missing request body")
    if len(raw) > limit:
        raise TooLarge(too_large_message(limit))
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except UnicodeDecodeError:
        raise BadRequest("invalid character in request body: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:  # arrays or objects nested deeper than the parser's stack
        raise BadRequest("invalid JSON: exceeded max depth") from None
    except ValueError:  # the only other: an integer past Python's 4300-digit conversion limit
        raise BadRequest("invalid JSON: a number has too many digits") from None
    if not isinstance(body, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(body).__name__} into Go value of type object"
        )
    if _SURROGATE_ESCAPE.search(raw):
        _refuse_lone_surrogates(body)
    return body


def too_large_message(limit: int) -> str:
    return f"request body too large: more than {limit} bytes (OLLAMAKIT_MAX_REQUEST_BODY)"


def _not_json(constant: str):
    """Python's parser takes ``NaN`` and ``Infinity``; JSON (and Go) do not."""
    raise BadRequest(f"invalid character '{constant[0]}' looking for beginning of value")


def _refuse_lone_surrogates(value) -> None:
    """An unpaired ``\\ud800``-style escape decodes to a string that is not Unicode text: it
    cannot be encoded as UTF-8, so it would fail wherever it is tokenized, stored or logged.
    The walk is iterative, since a body may nest as deep as the parser allows."""
    pending = [value]
    while pending:
        node = pending.pop()
        parts = itertools.chain(node.keys(), node.values()) if isinstance(node, dict) else node
        for part in parts:
            if isinstance(part, str):
                found = _LONE_SURROGATE.search(part)
                if found:
                    code = ord(found.group())
                    raise BadRequest(
                        f"invalid JSON: string escape \\u{code:04x} is half of a surrogate pair"
                    )
            elif isinstance(part, (dict, list)):
                pending.append(part)


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
        raise BadRequest(
            f"json: cannot unmarshal {type(value).__name__} into field {key} of type {names}"
        )
    return value
