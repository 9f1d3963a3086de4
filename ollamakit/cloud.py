"""Ollama's cloud switch, and what ollamakit answers where Ollama would reach ollama.com.

ollamakit has no cloud account and never contacts ollama.com. Where Ollama checks its switch
(``OLLAMA_NO_CLOUD``, or ``disable_ollama_cloud`` in ``~/.ollama/server.json``) ollamakit answers
as Ollama does with it on; with it off, as an Ollama that is signed out does (its request
to ollama.com cannot be signed). The account routes answer as Ollama does when ollama.com cannot
vouch for an account. See docs/compatibility.md.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit, urlunsplit

from .errors import BadRequest, OllamaError

DISABLED_PREFIX = "ollama cloud is disabled"
WEB_SEARCH = "web search is unavailable"
WEB_FETCH = "web fetch is unavailable"
REMOTE_INFERENCE = "remote model is unavailable"
REMOTE_DETAILS = "remote model details are unavailable"
CONFLICTING_SOURCE = "use either :local or :cloud, not both"
CLOUD_BASE_URL = "https://ollama.com:443"  # where a ``:cloud`` parent's stub points
DEFAULT_PORT = "11434"


def _source_suffix(raw: str) -> tuple[str, str]:
    base, colon, tag = raw.rpartition(":")
    if not colon:
        return raw, ""
    lowered = tag.strip().lower()
    if lowered in ("cloud", "local"):
        return base, lowered
    if "/" not in tag and lowered.endswith("-cloud"):
        return f"{base}:{tag.strip()[: -len('-cloud')]}", "cloud"
    return raw, ""


def split_source(raw: str) -> tuple[str, str]:
    """A model name's source, as Ollama's ``modelref`` reads it: a last tag of ``cloud`` (or
    one ending in ``-cloud``) or ``local`` says where the model runs, and is taken off the name
    (``m:cloud`` -> ``m``, ``m:7b-cloud`` -> ``m:7b``, ``m:local`` -> ``m``). Returns the name
    left and ``"cloud"``, ``"local"`` or ``""``; both suffixes at once are a 400."""
    raw = raw.strip()
    base, source = _source_suffix(raw)
    if source and _source_suffix(base)[1]:
        raise BadRequest(f'{CONFLICTING_SOURCE}: "{raw}"')
    return base, source


def status(settings) -> dict:
    """The body of ``GET /api/status``."""
    return {"cloud": {"disabled": settings.no_cloud, "source": settings.no_cloud_source}}


def disabled_error(operation: str = "") -> str:
    return f"{DISABLED_PREFIX}: {operation}" if operation else DISABLED_PREFIX


def refusal(settings, operation: str) -> OllamaError:
    """Why a cloud-backed operation (a web search or fetch) cannot run: 403 with Ollama's text
    when the cloud is switched off, else 401 ``unauthorized``, Ollama's answer when it holds no
    key to sign the request with."""
    if settings.no_cloud:
        return OllamaError(disabled_error(operation), 403)
    return OllamaError("unauthorized", 401)


def remote_url(raw: str) -> str:
    """A remote stub's host as Ollama's create stores it (``server/create.go`` ``remoteURL``):
    a bare path is on ``localhost:11434``, a missing scheme is ``http``, a missing port is 11434,
    bare ``ollama.com`` is ``https://ollama.com:443``, the path is cleaned. A URL that does not
    parse is a 400 ``bad remote``."""
    if raw.startswith("/"):
        return f"http://localhost:{DEFAULT_PORT}{posixpath.normpath(raw)}"
    if "://" not in raw:
        raw = "http://" + raw
    if raw == "http://ollama.com":
        raw = CLOUD_BASE_URL
    try:
        parts = urlsplit(raw)
        port = parts.port  # reads (and checks) the port
        host = parts.hostname or "localhost"
    except ValueError:
        raise BadRequest("bad remote") from None
    if not parts.scheme or any(c.isspace() or c in '<>"{}|^`' for c in raw):
        raise BadRequest("bad remote")
    user = parts.netloc.rpartition("@")[0]
    host = f"[{host}]" if ":" in host else host
    netloc = f"{user + '@' if user else ''}{host}:{port if port is not None else DEFAULT_PORT}"
    path = posixpath.normpath(parts.path) if parts.path else ""
    if path in ("/", "."):
        path = ""
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))
