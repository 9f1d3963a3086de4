"""``OLLAMA_DEBUG_LOG_REQUESTS``: every inference request's body, with a shell script that replays
it through curl, written to a fresh temporary folder, as Ollama writes them (files named
``<UTC time>-<n>_<route>_body.json`` and ``..._request.sh``, readable by the owner only)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path

log = logging.getLogger("ollamakit.web")

# The routes Ollama logs: the ones that run a model to generate text.
LOGGED_ROUTES = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/messages",
    }
)
RAW_BODY = "raw_body"  # the attribute of ``req.context`` that ``read_json`` leaves the bytes in


def _route_for_filename(route: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", route.lstrip("/")) or "root"


def _timestamp(counter: int) -> str:
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{nanos:09d}Z-{counter:06d}"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class RequestLogMiddleware:
    def __init__(self, directory: Path | None = None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="ollama-request-logs-"))
        self._count = itertools.count(1)
        log.info(
            "request debug logging enabled; inference request logs will be stored in %s and include "
            "request bodies and replay curl commands",
            self.dir,
        )

    def process_response(self, req, resp, resource, req_succeeded):
        body = getattr(req.context, RAW_BODY, None)
        if req.method != "POST" or req.path not in LOGGED_ROUTES or body is None:
            return
        name = f"{_timestamp(next(self._count))}_{_route_for_filename(req.path)}"
        body_path, script_path = self.dir / f"{name}_body.json", self.dir / f"{name}_request.sh"
        url = f"{req.scheme}://{req.netloc}{req.path}"
        content_type = req.content_type or "application/json"
        script = (
            "#!/bin/sh\n"
            'SCRIPT_DIR="$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)"\n'
            f"curl --request POST --url {json.dumps(url)} --header {json.dumps('Content-Type: ' + content_type)} "
            f'--data-binary @"${{SCRIPT_DIR}}/{body_path.name}"\n'
        )
        try:
            _write_private(body_path, body)
            _write_private(script_path, script.encode())
        except OSError as exc:
            log.warning("could not write the debug log of a %s request: %s", req.path, exc)
            return
        log.info("logged to %s, replay using curl with `sh %s`", body_path, script_path)
