"""The scheduler: which models are loaded, for how long, and who waits.

* A model loads on first use, in its own thread, so other models keep serving meanwhile.
* Loaded copies are keyed by what they load (``load_key``): the model file, its adapters and
  projector, and the load options that change the runner. Two names for one file (``ollama cp``)
  share one copy, as Ollama keys its runners by model file; the copy is listed by ``/api/ps``
  under the name that loaded it, and ``keep_alive`` or an unload through either name applies to
  it.
* ``keep_alive`` decides when an idle model unloads (0: right after the request; forever when
  negative); one timer thread unloads expired models.
* At most ``settings.max_loaded_models`` models, within a memory budget (a fraction of RAM);
  to make room the least recently used idle model is unloaded, or the request waits.
* Each loaded model serves ``num_parallel`` requests at once, batched into one forward pass:
  ``OLLAMA_NUM_PARALLEL`` when set, else chosen per model from memory (``_parallel_for``).
* Requests that wait (for a load, for room, or for one of the model's ``num_parallel`` slots)
  are counted; beyond ``settings.max_queue`` the server answers 503. A request whose client
  leaves while it waits gives up at once (``acquire``'s ``gone``), so it never takes a slot.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field

from ollamakit.errors import Busy, Cancelled, NotFound, OllamaError
from ollamakit import interfaces
from ollamakit.interfaces import Runner
from ollamakit.store import LocalModel, format_local_time

from ollamakit import manifest as mf
from ollamakit import options as opts
from .batch import BatchWorker
from .sequence import Sequence

log = logging.getLogger("ollamakit.scheduler")

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
# Slots a model gets when OLLAMA_NUM_PARALLEL is not set, if its weights and that many full
# caches fit in memory; else one. Ollama's automatic rule (0.2 to 0.6: four, else one when four
# do not fit); Ollama has since defaulted to one, but this engine batches the slots' tokens into
# one forward pass, so four clients cost little more than one.
AUTO_PARALLEL = 4
MAX_ESTIMATES = 256  # estimates remembered (requests choose num_ctx, so keep it bounded)
WAIT_POLL_SECONDS = 0.1  # how often a waiting request asks whether its client is still there
FOREVER_SECONDS = 292 * 365.25 * 24 * 3600  # how far ahead /api/ps shows "never"
# The load options (``options.LOAD_OPTIONS``) that make a different runner, so a copy loaded
# with other values serves no one else. Not ``num_ctx``: each request's cache is sized by its
# own (``context_for``), on any copy. (The cache type and the backend are the server's, the
# same for every load; the slots, ``num_parallel``, the scheduler's own choice.)
RUNNER_OPTIONS = ("num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


@dataclass(frozen=True)
class LoadKey:
    """What a loaded copy is: the digests of the files it loads (model, adapters, projectors;
    the manifest's for a model without a model file) and its runner options."""

    files: tuple[str, ...]
    options: tuple[tuple[str, object], ...]

    def serves(self, wanted: LoadKey) -> bool:
        """Whether this copy serves a request that wants ``wanted``: the same files and options,
        where a negative ``num_gpu`` (Ollama's "as many as fit") takes the copy's own."""
        if self.files != wanted.files:
            return False
        mine, theirs = dict(self.options), dict(wanted.options)
        num_gpu = theirs.get("num_gpu")
        if isinstance(num_gpu, int) and num_gpu < 0:
            theirs["num_gpu"] = mine.get("num_gpu")
        return mine == theirs


def load_key(model: LocalModel, options: opts.Options) -> LoadKey:
    return LoadKey(model_files(model), tuple((k, getattr(options, k)) for k in RUNNER_OPTIONS))


def model_files(model: LocalModel) -> tuple[str, ...]:
    """The digests of the files a load of ``model`` reads, in the manifest's order."""
    if model.model_layer is None:
        return ("manifest", model.digest)
    return tuple(
        layer.digest
        for media_type in (mf.MODEL, mf.ADAPTER, mf.PROJECTOR)
        for layer in model.manifest.find(media_type)
    )


def total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def memory_fraction(settings) -> float:
    return min(max(settings.memory_fraction, 0.01), 1.0)


@dataclass(eq=False)
class LoadedModel:
    key: LoadKey
    model: LocalModel  # the model of the request that loaded it: /api/ps lists its name
    num_ctx_requested: int | None
    memory: int
    num_parallel: int = 1
    runner: Runner | None = None
    worker: BatchWorker | None = None
    num_ctx: int = 0
    refs: int = 0
    keep_alive: float = 300.0
    expires_at: float = math.inf  # wall-clock seconds; inf while in use and keep_alive < 0
    last_used: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    unloading: bool = False
    unload_reason: str = "expired"  # what observers are told once it goes (on_model_unloaded)


class Lease(interfaces.Lease):
    """A request's hold on a loaded model: it stays loaded until ``release``."""

    def __init__(self, scheduler: Scheduler, entry: LoadedModel, options: opts.Options):
        self.scheduler = scheduler
        self.entry = entry
        self.runner = entry.runner
        self.tokenizer = entry.runner.tokenizer
        self.options = options
        self.num_ctx = entry.num_ctx = scheduler.context_for(entry, options)
        self._queued = True
        self._released = False

    def start(self, prompt: list[int], **kwargs) -> Sequence:
        """Queue a sequence for the model's batching loop; iterate ``sequence.events()``."""
        kwargs.setdefault("max_predict", self.scheduler.settings.max_predict)
        seq = Sequence(prompt, self.options, self.num_ctx, self.tokenizer, **kwargs)
        seq.on_start = self._dequeue
        seq.on_cancel = self.entry.worker.wake
        self.entry.worker.submit(seq)
        return seq

    def _dequeue(self) -> None:
        if self._queued:
            self._queued = False
            self.scheduler._leave_queue()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._dequeue()
            self.scheduler._release(self.entry)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Scheduler(interfaces.Scheduler):
    def __init__(self, kernel, memory_budget: int | None = None):
        self.kernel = kernel
        self.settings = kernel.settings
        self.memory_budget = memory_budget or int(total_memory() * memory_fraction(self.settings))
        self._loaded: dict[LoadKey, LoadedModel] = {}
        self._cond = threading.Condition()
        self._pending = 0
        self._measured: dict[tuple, int] = {}  # (model files, slots) -> memory once loaded
        self._estimates: dict[tuple, int] = {}  # (model files, num_ctx, slots) -> estimate
        self._closed = False
        self._timer: threading.Thread | None = None

    # -- public API ----------------------------------------------------------------------------

    def acquire(
        self, model: LocalModel, options: opts.Options, keep_alive: float | None = None, gone=None
    ) -> Lease:
        """Load ``model`` if needed and hold it for one request. Raises ``Busy`` (503) when too
        many requests already wait, the load's error when it fails, and ``Cancelled`` when
        ``gone()`` (the client left) says yes while the request waits for memory or a load.
        ``keep_alive`` None leaves a loaded copy's own (the server default for a new one), as
        Ollama keeps a runner's duration unless a request names one."""
        with self._cond:
            if self._closed:
                raise OllamaError("server is shutting down")
            limit = self.settings.max_queue
            if limit > 0 and self._pending >= limit:
                raise Busy(QUEUE_FULL)
            self._pending += 1
        try:
            entry = self._hold(model, options, gone)
            self._await_load(entry, gone)
        except BaseException:
            self._leave_queue()
            raise
        with self._cond:
            if keep_alive is not None:
                entry.keep_alive = keep_alive
            keep = entry.keep_alive
            entry.expires_at = time.time() + keep if keep != math.inf else math.inf
        try:
            return Lease(self, entry, options)
        except BaseException:
            self._leave_queue()
            self._release(entry)
            raise

    def unload(self, model: LocalModel) -> bool:
        """Unload ``model`` now, or as soon as its running requests finish: every copy of its
        files, whichever name loaded it and with whatever options (Ollama expires the runner
        of the model's file)."""
        files = model_files(model)
        with self._cond:
            entries = [e for e in self._loaded.values() if e.key.files == files]
            for entry in entries:
                entry.keep_alive, entry.expires_at = 0.0, time.time()
                entry.unload_reason = "requested"
                if entry.refs == 0 and entry.ready.is_set():
                    self._drop(entry, "requested")
            return bool(entries)

    def queued(self) -> int:
        with self._cond:
            return self._pending

    def ps(self) -> list[dict]:
        with self._cond:
            entries = [e for e in self._loaded.values() if e.ready.is_set() and e.error is None]
        now = time.time()

        def expiry(entry):
            return now + FOREVER_SECONDS if entry.expires_at == math.inf else entry.expires_at

        entries.sort(key=expiry, reverse=True)
        return [self._describe(entry, expiry(entry)) for entry in entries]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            entries = list(self._loaded.values())
            self._loaded.clear()
            self._cond.notify_all()
        for entry in entries:
            self._close_entry(entry, "shutdown")

    # -- loading -------------------------------------------------------------------------------

    def _estimate(self, model: LocalModel, options: opts.Options, num_parallel: int) -> int:
        """Bytes the model will take with ``num_parallel`` slots: as measured last time, else
        what its engine works out from the file for this context (weights and every slot's
        cache), else its file size plus a tenth."""
        files = model_files(model)
        measured = self._measured.get((files, num_parallel))
        if measured is not None:
            return measured
        num_ctx = options.num_ctx or self.kernel.default_num_ctx
        key = (files, num_ctx, num_parallel)
        if key in self._estimates:  # reading the file's header for every request costs
            return self._estimates[key]
        try:
            estimate = self.kernel.hook.estimate_memory(
                kernel=self.kernel, model=model, num_ctx=num_ctx, num_parallel=num_parallel
            )
        except Exception:  # a file the engine cannot read fails at load, with its own message
            log.warning("could not estimate the memory of %s", model.short_name, exc_info=True)
            estimate = None
        if not estimate:
            layer = model.model_layer
            estimate = (layer.size if layer else model.manifest.size) * 1.1
        if len(self._estimates) >= MAX_ESTIMATES:
            self._estimates.clear()
        self._estimates[key] = int(estimate)
        return int(estimate)

    def _parallel_choices(self, model: LocalModel, options: opts.Options) -> list[tuple[int, int]]:
        """``(slots, bytes)`` to load ``model`` with, best first: ``OLLAMA_NUM_PARALLEL`` slots
        when set; else ``AUTO_PARALLEL``, then one (see ``_parallel_for``)."""
        counts = (
            [self.settings.num_parallel] if self.settings.num_parallel > 0 else [AUTO_PARALLEL, 1]
        )
        return [(count, self._estimate(model, options, count)) for count in counts]

    def _parallel_for(self, choices: list[tuple[int, int]]) -> tuple[int, int]:
        """The first choice that fits in the memory left to it (the budget less what models in
        use hold), else the last. Lock held."""
        busy = sum(e.memory for e in self._loaded.values() if e.refs > 0 or not e.ready.is_set())
        return next((c for c in choices if c[1] <= self.memory_budget - busy), choices[-1])

    def _used_memory(self) -> int:
        return sum(e.memory for e in self._loaded.values())

    def _hold(self, model: LocalModel, options: opts.Options, gone=None) -> LoadedModel:
        """A reference on a loaded (or loading) entry for ``model``, making room if needed."""
        key, choices = load_key(model, options), self._parallel_choices(model, options)
        deadline = time.monotonic() + self.settings.load_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise OllamaError("server is shutting down")
                if gone is not None and gone():
                    raise Cancelled("client disconnected")
                entry = self._serving(key)
                if entry is not None:
                    entry.refs += 1
                    entry.last_used = time.monotonic()
                    return entry
                num_parallel, needed = self._parallel_for(choices)
                if self._make_room(needed):
                    entry = LoadedModel(
                        key,
                        model,
                        options.num_ctx,
                        needed,
                        num_parallel,
                        refs=1,
                        keep_alive=self.settings.keep_alive,
                    )
                    self._loaded[key] = entry
                    threading.Thread(
                        target=self._load, args=(entry, options), name="ollamakit-load", daemon=True
                    ).start()
                    return entry
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OllamaError("timed out waiting for memory to load the model")
                self._cond.wait(min(remaining, WAIT_POLL_SECONDS if gone is not None else 1.0))

    def _serving(self, key: LoadKey) -> LoadedModel | None:
        """The loaded (or loading) copy that serves ``key``, the exact one first. Lock held."""
        entry = self._loaded.get(key)
        if entry is None:
            entry = next((e for e in self._loaded.values() if e.key.serves(key)), None)
        return entry if entry is not None and not entry.unloading else None

    def _make_room(self, needed: int) -> bool:
        """Unload idle models, least recently used first, until ``needed`` bytes and a model
        slot are free. False when busy models are in the way (the caller waits)."""
        if not self._loaded and needed > self.memory_budget:
            raise OllamaError(
                f"model requires more system memory ({needed / 2**30:.1f} GiB) "
                f"than is available ({self.memory_budget / 2**30:.1f} GiB)"
            )
        limit = max(1, self.settings.max_loaded_models)
        while len(self._loaded) >= limit or self._used_memory() + needed > self.memory_budget:
            idle = [e for e in self._loaded.values() if e.refs == 0 and e.ready.is_set()]
            if not idle:
                return False
            self._drop(min(idle, key=lambda e: e.last_used), "evicted")
        return True

    def _trim_after_load(self, loaded: LoadedModel) -> None:
        """The estimate was low: unload idle models (LRU first) until the budget holds again."""
        while self._used_memory() > self.memory_budget:
            idle = [
                e
                for e in self._loaded.values()
                if e is not loaded and e.refs == 0 and e.ready.is_set()
            ]
            if not idle:
                return
            self._drop(min(idle, key=lambda e: e.last_used), "evicted")

    def _load(self, entry: LoadedModel, options: opts.Options) -> None:
        started = time.perf_counter()
        try:
            runner = self.kernel.hook.load_model(
                kernel=self.kernel, model=entry.model, options=opts.load_options(options)
            )
            if runner is None:
                arch = entry.model.config.get("model_family") or "unknown"
                raise OllamaError(
                    f'no engine plugin can run model "{entry.model.short_name}" (architecture {arch})'
                )
            entry.runner = runner
            entry.memory = int(runner.memory_bytes or entry.memory)
            entry.worker = BatchWorker(
                runner, entry.num_parallel, entry.model.short_name, batch_size=options.num_batch
            )
            entry.num_ctx = self.context_for(entry, options)
            # every slot's cache, filled as requests arrive (0 when memory_bytes counts it)
            entry.memory += entry.num_parallel * runner.cache_bytes(entry.num_ctx)
            with self._cond:
                self._measured[entry.key.files, entry.num_parallel] = entry.memory
                self._trim_after_load(entry)
            log.info(
                "loaded %s (%d MiB, context %d, %d parallel)",
                entry.model.short_name,
                entry.memory >> 20,
                entry.num_ctx,
                entry.num_parallel,
            )
        except BaseException as exc:
            log.exception("loading %s failed", entry.model.short_name)
            # A model that will not load is the server's problem (500), not the request's; only
            # a missing model file keeps its 404.
            if isinstance(exc, NotFound):
                entry.error = exc
            else:
                # Another exception's text may hold file paths: it is in the log above.
                message = (
                    exc.message
                    if isinstance(exc, OllamaError)
                    else "failed to load model (the server log has the details)"
                )
                entry.error = OllamaError(message, 500)
            with self._cond:
                if self._loaded.get(entry.key) is entry:
                    del self._loaded[entry.key]
        finally:
            entry.ready.set()
            with self._cond:
                self._cond.notify_all()
        if entry.error is None:
            self.kernel.observe(
                self.kernel.hook.on_model_loaded,
                model=entry.model,
                seconds=time.perf_counter() - started,
                memory_bytes=entry.memory,
            )

    def _await_load(self, entry: LoadedModel, gone=None) -> None:
        timeout = self.settings.load_timeout if self.settings.load_timeout > 0 else math.inf
        deadline = time.monotonic() + timeout
        while not entry.ready.wait(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
            if gone is not None and gone():
                self._release(entry)
                raise Cancelled("client disconnected")
            if time.monotonic() >= deadline:
                self._release(entry)
                raise OllamaError("timed out waiting for the model to load")
        if entry.error is not None:
            self._release(entry)
            raise entry.error

    def context_for(self, entry: LoadedModel, options: opts.Options) -> int:
        """``num_ctx`` for a request: its own, else the server default; within the model's
        training context."""
        wanted = options.num_ctx or self.kernel.default_num_ctx
        trained = entry.runner.context_length
        if trained > 0:
            wanted = min(wanted, trained)
        return max(opts.MIN_NUM_CTX, wanted)

    # -- releasing and expiry -----------------------------------------------------------------

    def _leave_queue(self) -> None:
        with self._cond:
            self._pending = max(0, self._pending - 1)

    def _release(self, entry: LoadedModel) -> None:
        with self._cond:
            entry.refs = max(0, entry.refs - 1)
            entry.last_used = time.monotonic()
            if entry.refs == 0:
                if entry.keep_alive == math.inf:
                    entry.expires_at = math.inf
                else:
                    entry.expires_at = time.time() + entry.keep_alive
                if entry.keep_alive <= 0 and self._loaded.get(entry.key) is entry:
                    self._drop(entry, entry.unload_reason)
                else:
                    self._ensure_timer()
            self._cond.notify_all()

    def _drop(self, entry: LoadedModel, reason: str) -> None:
        """Forget ``entry`` (lock held) and close it on another thread; ``reason`` is what
        observers are told (``on_model_unloaded``)."""
        entry.unloading = True
        if self._loaded.get(entry.key) is entry:
            del self._loaded[entry.key]
        threading.Thread(
            target=self._close_entry, args=(entry, reason), name="ollamakit-unload", daemon=True
        ).start()
        self._cond.notify_all()

    def _close_entry(self, entry: LoadedModel, reason: str) -> None:
        entry.ready.wait()
        try:
            if entry.worker is not None:
                entry.worker.close()
            if entry.runner is not None:
                entry.runner.close()
            log.info("unloaded %s", entry.model.short_name)
        except Exception:
            log.exception("closing %s failed", entry.model.short_name)
        if entry.runner is not None and entry.error is None:
            self.kernel.observe(
                self.kernel.hook.on_model_unloaded, model=entry.model, reason=reason
            )

    def _ensure_timer(self) -> None:
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Thread(
                target=self._expire_loop, name="ollamakit-expiry", daemon=True
            )
            self._timer.start()

    def _expire_loop(self) -> None:
        """Unload idle models whose time is up; ends when nothing is loaded."""
        with self._cond:
            while not self._closed and self._loaded:
                now = time.time()
                for entry in [e for e in self._loaded.values() if e.refs == 0 and e.ready.is_set()]:
                    if entry.expires_at <= now:
                        self._drop(entry, "expired")
                upcoming = [
                    e.expires_at
                    for e in self._loaded.values()
                    if e.refs == 0 and e.expires_at != math.inf
                ]
                wait = min(upcoming) - now if upcoming else 60.0
                self._cond.wait(max(0.01, min(wait, 60.0)))

    # -- /api/ps -------------------------------------------------------------------------------

    def _describe(self, entry: LoadedModel, expires_at: float) -> dict:
        model = entry.model
        name = model.short_name
        return {
            "name": name,
            "model": name,
            "size": int(entry.memory),
            "size_vram": int(entry.runner.vram_bytes),
            "digest": model.digest,
            "details": model_details(model),
            "expires_at": format_local_time(expires_at),
            "context_length": int(entry.num_ctx),
        }


def model_details(model: LocalModel) -> dict:
    config = model.config
    families = config.get("model_families")
    family = config.get("model_family", "")
    return {
        "parent_model": "",
        "format": config.get("model_format", "gguf"),
        "family": family,
        "families": families if isinstance(families, list) else ([family] if family else None),
        "parameter_size": config.get("model_type", ""),
        "quantization_level": config.get("file_type", ""),
    }
