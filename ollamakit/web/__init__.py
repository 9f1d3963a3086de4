"""The WSGI app: a Falcon app whose routes all come from plugins."""

from .app import create_app
from .body import parse_json, read_json
from .disconnect import CLIENT_DISCONNECTED, client_gone
from .received import RECEIVED_BODY, ReceivedBody, received_body
from .routes import RouteCollision
from .streaming import (
    error_status,
    errors_in_envelope,
    json_response,
    sse_frame,
    sse_response,
    stream_response,
)

__all__ = [
    "create_app",
    "RouteCollision",
    "read_json",
    "parse_json",
    "client_gone",
    "CLIENT_DISCONNECTED",
    "error_status",
    "errors_in_envelope",
    "json_response",
    "sse_frame",
    "sse_response",
    "stream_response",
    "RECEIVED_BODY",
    "ReceivedBody",
    "received_body",
]
