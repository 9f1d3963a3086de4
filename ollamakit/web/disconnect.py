"""Whether a request's client is still there, so abandoned work can stop.

A transport that can tell puts a callable under ``CLIENT_DISCONNECTED`` in the WSGI environ:
it returns True once the client's connection is closed. Handlers that wait on long work (a
``stream: false`` generate, an embedding batch) ask it while they wait; a streamed reply also
learns it when a write fails, but a prompt being evaluated writes nothing for a long time.
"""

from __future__ import annotations

from collections.abc import Callable

CLIENT_DISCONNECTED = "ollamakit.client_disconnected"


def _never() -> bool:
    return False


def client_gone(req) -> Callable[[], bool]:
    """The check for ``req``'s client; one that never says gone when the transport cannot tell
    (an in-process test client, another transport)."""
    check = req.env.get(CLIENT_DISCONNECTED)
    return check if callable(check) else _never
