"""Every answered request, told to the observers of ``on_request_done`` (a metrics plugin, an
access log). The middleware runs first, so it also sees requests the others refuse (a 401, a
403); it is added only while some plugin observes, so a server without one pays nothing."""

from __future__ import annotations

import time

STARTED = "observed_since"  # the attribute of ``req.context`` holding the arrival time


class RequestObserver:
    def __init__(self, kernel):
        self.kernel = kernel

    def process_request(self, req, resp):
        setattr(req.context, STARTED, time.perf_counter())

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, STARTED, None)
        self.kernel.observe(
            self.kernel.hook.on_request_done,
            method=req.method,
            route=req.uri_template or "",
            status=resp.status_code,
            seconds=time.perf_counter() - started if started is not None else 0.0,
        )
