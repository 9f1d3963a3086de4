"""Whether the server can serve: the models named in ``OLLAMAKIT_PRELOAD`` are loaded.

At start a thread loads each model in turn through the kernel's native inference contract
(``ollamakit.inference``), as a client would preload one: a generate request without a prompt,
or, for a model that only embeds, an embed request without input. Neither names a
``keep_alive``, so each model stays loaded for ``OLLAMA_KEEP_ALIVE`` (forever when negative), as
any request without one would keep it.
"""

from __future__ import annotations

import logging
import threading
import weakref

from ollamakit import inference
from ollamakit.errors import INTERNAL_ERROR, BadRequest, OllamaError
from ollamakit.web import json_response

log = logging.getLogger(__name__)

WAITING, LOADING, LOADED, FAILED = "waiting", "loading", "loaded", "failed"
_BY_KERNEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def readiness(kernel) -> Readiness:
    """The one ``Readiness`` of ``kernel`` (its routes and its start-up share it)."""
    found = _BY_KERNEL.get(kernel)
    if found is None:
        found = _BY_KERNEL[kernel] = Readiness(kernel)
    return found


class Readiness:
    def __init__(self, kernel):
        self.kernel = kernel
        self.models = {name: {"status": WAITING} for name in kernel.settings.preload}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.models and self._thread is None:
            self._thread = threading.Thread(
                target=self._preload, name="ollamakit-preload", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # a load under way gives up at its next check

    def _set(self, name: str, status: str, error: str | None = None) -> None:
        with self._lock:
            self.models[name] = {"status": status, **({"error": error} if error else {})}

    def _preload(self) -> None:
        for name in list(self.models):
            if self._stopping.is_set():
                return
            self._set(name, LOADING)
            try:
                self._load(name)
            except OllamaError as exc:
                log.error("preloading %s failed: %s", name, exc.message)
                self._set(name, FAILED, exc.message)
            except Exception:
                log.exception("preloading %s failed", name)
                self._set(name, FAILED, INTERNAL_ERROR)
            else:
                log.info("preloaded %s", name)
                self._set(name, LOADED)

    def _load(self, name: str) -> None:
        gone = self._stopping.is_set
        try:
            for _ in inference.generate(self.kernel, {"model": name}, gone=gone):
                pass
        except BadRequest as refused:  # a model that only embeds cannot generate: load it to embed
            try:
                inference.embed(self.kernel, {"model": name, "input": []}, gone=gone)
            except OllamaError:
                raise refused from None

    def report(self) -> tuple[int, dict]:
        """503 until every preload model is loaded (for good, when one failed), then 200."""
        with self._lock:
            models = {name: dict(state) for name, state in self.models.items()}
        states = {state["status"] for state in models.values()}
        status = FAILED if FAILED in states else LOADING if states - {LOADED} else "ok"
        body = {"status": status, **({"models": models} if models else {})}
        return (200 if status == "ok" else 503), body


class Health:
    """``GET /health``: readiness for a load balancer or an orchestrator's probe."""

    def __init__(self, readiness: Readiness):
        self.readiness = readiness

    def on_get(self, req, resp):
        status, body = self.readiness.report()
        json_response(resp, body, status)

    on_head = on_get
