"""Remote stubs: a stored model whose config names ``remote_host`` and ``remote_model`` runs on
that host. Its chat and generate requests are sent on there, with the stub's own system prompt,
history, template and parameters, and the host's replies come back one by one under the stub's
name, marked with where they came from (Ollama's ``GenerateHandler`` and ``ChatHandler``).

What may be asked, as Ollama decides it: nothing while the cloud is switched off
(``OLLAMA_NO_CLOUD``), and only hosts ``OLLAMA_REMOTES`` lists (``ollama.com`` unless set).
ollama.com takes only requests signed with an account's key, which ollamakit does not hold, so
a stub of an ollama.com model answers as a signed-out Ollama does.

The exchange is bounded: a reply line is at most ``MAX_LINE`` bytes (the size Ollama's client
reads), the host must answer within the load timeout, and when the client leaves, the
connection to the host is shut at once, which is how the host learns to stop.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from .. import OLLAMA_VERSION, __version__, cloud
from ..errors import BadRequest, Cancelled, OllamaError
from ..rendering import filter_think_tags
from ..store import LocalModel

log = logging.getLogger("ollamakit.inference")

MAX_LINE = 8 << 20  # bytes of one reply line (Ollama's client reads lines up to 8 MB)
DEFAULT_TEMPLATE = "{{ .Prompt }}"  # what Ollama sends for a stub that has no template
WATCH_INTERVAL = 0.2  # seconds between looks at whether the client is still there
USER_AGENT = f"ollama/{OLLAMA_VERSION} ollamakit/{__version__}"

# The fields Ollama's request types carry, in their order: Ollama decodes a request into its
# type and encodes that again for the host, so nothing else is sent on.
GENERATE_FIELDS = (
    "model prompt suffix system template context stream raw format keep_alive images options "
    "think truncate shift _debug_render_only logprobs top_logprobs"
).split()
CHAT_FIELDS = (
    "model messages stream format keep_alive tools options think truncate shift "
    "_debug_render_only logprobs top_logprobs"
).split()


def is_remote(model: LocalModel) -> bool:
    config = model.config
    return bool(config.get("remote_host") and config.get("remote_model"))


def chat(kernel, model: LocalModel, body: dict, gone=None) -> Iterator[dict]:
    """The host's replies to a chat: the stub's system prompt (unless the request starts with
    its own) and stored history before the request's messages, old thinking dropped as the
    model's family wants, the stub's parameters under the request's options."""
    url = _checked_host(kernel, model)
    sent = _forwarded(body, CHAT_FIELDS, model)
    messages = list(sent.get("messages") or [])
    if messages:
        history = [m for m in model.messages if isinstance(m, dict)]
        messages = history + messages
        first = body["messages"][0]
        if model.system and not (isinstance(first, dict) and first.get("role") == "system"):
            messages.insert(0, {"role": "system", "content": model.system})
    family = model.config.get("model_family") or ""
    sent["messages"] = filter_think_tags(messages, family, model.name)
    return _proxy(kernel, model, url + "/api/chat", sent, body.get("model", ""), gone)


def generate(kernel, model: LocalModel, body: dict, gone=None) -> Iterator[dict]:
    """The host's replies to a generate: the stub's template (``{{ .Prompt }}`` when it has
    none, as Ollama sends) and system prompt where the request gives none, its parameters
    under the request's options. Its stored history is not sent (Ollama says so in its log)."""
    url = _checked_host(kernel, model)
    sent = _forwarded(body, GENERATE_FIELDS, model)
    sent["template"] = body.get("template") or model.template or DEFAULT_TEMPLATE
    if not body.get("system") and model.system:
        sent["system"] = model.system
    if model.messages:
        log.warning("a stub's MESSAGE history is not sent with generate; use chat")
    return _proxy(kernel, model, url + "/api/generate", sent, body.get("model", ""), gone)


def _checked_host(kernel, model: LocalModel) -> str:
    settings = kernel.settings
    if settings.no_cloud:
        raise OllamaError(cloud.disabled_error(cloud.REMOTE_INFERENCE), 403)
    host = model.config["remote_host"]
    try:
        hostname = urlsplit(host).hostname or ""
    except ValueError:
        hostname = ""
    if hostname not in {r.strip().lower() for r in settings.remotes}:
        log.info("remote host %s is not in OLLAMA_REMOTES %s", host, settings.remotes)
        raise BadRequest("this server cannot run this remote model")
    if hostname == "ollama.com":  # requests there must be signed with an account's key
        raise cloud.refusal(settings, cloud.REMOTE_INFERENCE)
    return host.rstrip("/")


def _forwarded(body: dict, fields: list[str], model: LocalModel) -> dict:
    sent = {key: body[key] for key in fields if key in body}
    sent["model"] = model.config["remote_model"]
    options = dict(body.get("options") or {})
    for key, value in model.params.items():
        options.setdefault(key, value)
    sent["options"] = options
    return sent


def _proxy(kernel, model: LocalModel, url: str, sent: dict, name: str, gone) -> Iterator[dict]:
    """Send ``sent`` and yield each reply line as the stub's. An answer of 400 or more is that
    status with the host's message, raised before anything is yielded; an error line later
    ends the stream with it."""
    import httpx

    host = model.config["remote_host"]
    marks = {"model": name, "remote_model": model.config["remote_model"], "remote_host": host}
    read = kernel.settings.load_timeout
    timeout = httpx.Timeout(10.0, read=None if read == float("inf") else read)
    headers = {"Accept": "application/x-ndjson", "User-Agent": USER_AGENT}
    gone = gone or _never
    answered = False
    try:
        with _Watch(gone) as watch:
            with _client().stream(
                "POST", url, json=sent, headers=headers, timeout=timeout, extensions=watch.trace
            ) as reply:
                for line in _lines(reply):
                    fields = _decoded(line, reply.status_code)
                    answered = True
                    yield {**marks, **{k: v for k, v in fields.items() if k not in marks}}
    except httpx.HTTPError as exc:
        if gone():
            raise Cancelled("client disconnected") from None
        log.warning("remote host %s: %r", host, exc)
        if isinstance(exc, httpx.TimeoutException):
            raise OllamaError(f"remote host {host} did not answer in time") from None
        if answered:
            raise OllamaError(f"remote host {host} closed the connection") from None
        raise OllamaError(f"cannot reach remote host {host}") from None


_CLIENT = None
_CLIENT_LOCK = threading.Lock()


def _client():
    """One client for every stub (its TLS setup is costly); redirects are not followed, and
    each request has a connection of its own, which ``_Watch`` may shut."""
    global _CLIENT
    import httpx

    with _CLIENT_LOCK:
        if _CLIENT is None:
            limits = httpx.Limits(max_keepalive_connections=0)
            _CLIENT = httpx.Client(follow_redirects=False, limits=limits)
        return _CLIENT


def _never() -> bool:
    return False


def _lines(response) -> Iterator[bytes]:
    """The reply's non-empty lines, none longer than MAX_LINE (each byte is looked at once)."""
    line = bytearray()
    for chunk in response.iter_bytes():
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            line += chunk[start : len(chunk) if end < 0 else end]
            if len(line) > MAX_LINE:
                raise OllamaError(f"remote reply line is longer than {MAX_LINE} bytes")
            if end < 0:
                break
            if line.strip():
                yield bytes(line)
            line.clear()
            start = end + 1
    if line.strip():
        yield bytes(line)


def _decoded(line: bytes, status: int) -> dict:
    """One reply line; a refusal or an error line becomes an ``OllamaError`` (401 in the words a
    signed-out Ollama uses; other statuses keep the host's own message)."""
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = line[:512].decode("utf-8", "replace")
        if status >= 400:
            raise OllamaError(text, status)
        raise OllamaError(f"remote host sent an unreadable reply: {text!r}")
    error = reply.get("error")
    if status == 401:
        raise OllamaError("unauthorized", 401)
    if status >= 400:
        raise OllamaError(str(error or f"remote host answered {status}"), status)
    if error:
        raise OllamaError(str(error))
    return reply


class _Watch:
    """While a request to the host lasts, a thread asks every WATCH_INTERVAL whether the client
    left and, if so, shuts the connection: a wait on the host (for its headers while it loads
    the model, for its next line) ends at once, and the host sees its own client leave. The
    connection's socket comes from httpx's connection trace, as soon as it is connected."""

    def __init__(self, gone: Callable[[], bool]):
        self.gone = gone
        self.socket: socket.socket | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="remote-watch", daemon=True)
        self.trace = {"trace": self._traced}

    def _traced(self, event: str, info: dict) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            self.socket = stream.get_extra_info("socket") if stream is not None else None

    def __enter__(self):
        if self.gone is not _never:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(WATCH_INTERVAL):
            if self.socket is not None and self.gone():
                try:
                    self.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
