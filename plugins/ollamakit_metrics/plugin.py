"""Plugin ``metrics``: serves ``GET /metrics`` and counts what the kernel's observation hooks
report (``on_request_done``, ``on_inference_done``, ``on_model_loaded``, ``on_model_unloaded``),
so any plugin could collect the same numbers. ``OLLAMAKIT_METRICS=0`` turns it off: no route (a
404) and nothing counted."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hooks: prometheus_client and falcon, which the CLI does without.
DEFERRED_IMPORTS = ("ollamakit_metrics.collector",)


def _metrics(kernel):
    if not kernel.settings.metrics:
        return None
    from .collector import metrics

    return metrics(kernel)


@hookimpl
def register_routes(app, kernel):
    found = _metrics(kernel)
    if found is not None:
        from .collector import Scrape

        app.add_route("/metrics", Scrape(found))


@hookimpl
def on_request_done(kernel, method, route, status, seconds):
    found = _metrics(kernel)
    if found is not None:
        found.request(method, route, status, seconds)


@hookimpl
def on_inference_done(kernel, served):
    found = _metrics(kernel)
    if found is not None:
        found.inference(served)


@hookimpl
def on_model_loaded(kernel, model, seconds, memory_bytes):
    found = _metrics(kernel)
    if found is not None:
        found.loaded(model.short_name, seconds)


@hookimpl
def on_model_unloaded(kernel, model, reason):
    found = _metrics(kernel)
    if found is not None:
        found.unloaded(model.short_name, reason)
