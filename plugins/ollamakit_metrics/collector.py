"""The numbers behind ``GET /metrics``, in Prometheus' text format (``prometheus-client``).

Counters and histograms move as the kernel's observation hooks report requests, answers, loads
and unloads; the gauges (queue depth, loaded models and their memory) are read from the
scheduler (``Scheduler.queued`` and ``ps``) when scraped. Each kernel has a registry of its own,
not prometheus-client's global one, so several servers in one process never share a count.
"""

from __future__ import annotations

import logging
import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ollamakit.events import Served

log = logging.getLogger(__name__)

_BY_KERNEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()

# Seconds: a small model's first token on a CPU, up to a large one's long prompt; and loads.
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def metrics(kernel) -> Metrics:
    """The one ``Metrics`` of ``kernel`` (its route and its hooks share it)."""
    with _LOCK:
        found = _BY_KERNEL.get(kernel)
        if found is None:
            found = _BY_KERNEL[kernel] = Metrics(kernel)
        return found


class Metrics:
    def __init__(self, kernel):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ollamakit_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "ollamakit_http_request_duration_seconds",
            "Time from a request's arrival to its answer's status (a stream's first bytes)",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.inferences = Counter(
            "ollamakit_inference_requests",
            "Requests that ran a model to the end, by model and kind (chat, generate, embed, rerank)",
            ["model", "kind"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "ollamakit_prompt_tokens",
            "Prompt tokens read (cached or not), by model",
            ["model"],
            registry=registry,
        )
        self.generated_tokens = Counter(
            "ollamakit_generated_tokens", "Tokens generated, by model", ["model"], registry=registry
        )
        self.first_token = Histogram(
            "ollamakit_time_to_first_token_seconds",
            "Time from a request's arrival (its load and queue included) to its first answer token",
            ["model"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.rate = Histogram(
            "ollamakit_generation_tokens_per_second",
            "Each answer's generation speed (its tokens after the prompt, over the time they took)",
            ["model"],
            buckets=RATE_BUCKETS,
            registry=registry,
        )
        self.load_seconds = Histogram(
            "ollamakit_model_load_duration_seconds",
            "Time to load a model",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.unloads = Counter(
            "ollamakit_model_unloads",
            "Models unloaded, by reason: expired, evicted (to make room), requested, shutdown",
            ["model", "reason"],
            registry=registry,
        )
        registry.register(SchedulerGauges(kernel))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)

    def inference(self, served: Served) -> None:
        model, numbers = served.model, served.metrics
        self.inferences.labels(model, served.kind).inc()
        self.prompt_tokens.labels(model).inc(numbers.prompt_eval_count)
        if numbers.eval_count:
            self.generated_tokens.labels(model).inc(numbers.eval_count)
            if numbers.eval_duration > 0:
                self.rate.labels(model).observe(numbers.eval_count / (numbers.eval_duration / 1e9))
        if served.first_token_seconds is not None:
            self.first_token.labels(model).observe(served.first_token_seconds)

    def loaded(self, model: str, seconds: float) -> None:
        self.load_seconds.labels(model).observe(seconds)

    def unloaded(self, model: str, reason: str) -> None:
        self.unloads.labels(model, reason).inc()

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class SchedulerGauges:
    """What the scheduler holds now, read at each scrape."""

    def __init__(self, kernel):
        self.kernel = weakref.proxy(kernel)  # the registry must not keep its kernel alive

    def describe(self):
        return []  # read only when scraped: describing must not start a scheduler

    def collect(self):
        queue = GaugeMetricFamily(
            "ollamakit_queue_depth",
            "Requests waiting for a model to load, for memory, or for a free slot",
        )
        count = GaugeMetricFamily("ollamakit_loaded_models", "Models loaded now")
        memory = GaugeMetricFamily(
            "ollamakit_model_memory_bytes",
            "Memory each loaded model holds (weights and caches)",
            labels=["model"],
        )
        vram = GaugeMetricFamily(
            "ollamakit_model_vram_bytes",
            "Of that, on an accelerator",
            labels=["model"],
        )
        try:
            scheduler = self.kernel.scheduler
            waiting, loaded = scheduler.queued(), scheduler.ps()
        except Exception:  # a scheduler that cannot say: the gauges are left out
            log.warning("the scheduler's state could not be read for /metrics", exc_info=True)
            return
        queue.add_metric([], waiting)
        count.add_metric([], len(loaded))
        for entry in loaded:
            memory.add_metric([entry["name"]], entry.get("size", 0))
            vram.add_metric([entry["name"]], entry.get("size_vram", 0))
        yield from (queue, count, memory, vram)


class Scrape:
    """``GET /metrics``: the registry in Prometheus' text format. ``HEAD /metrics`` answers the
    same status and headers without the body (Falcon leaves a HEAD reply's body out), as
    prometheus-client's own WSGI app does."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def on_get(self, req, resp):
        resp.data = self.metrics.scrape()
        resp.content_type = CONTENT_TYPE_LATEST

    on_head = on_get
