"""Prometheus metrics of one service (``prometheus_client``), plus the ASGI middleware that counts requests.

Exported at ``GET /metrics``:

* ``paramcast_requests_total{route,status}``          counter
* ``paramcast_request_seconds{route}``                 histogram of request latency
* ``paramcast_request_bytes_total{route}``             counter of body bytes received
* ``paramcast_response_bytes_total{route}``            counter of body bytes sent
* ``paramcast_batch_size``                             histogram of generator batch sizes
* ``paramcast_generate_seconds``                       histogram of generator call time

``route`` is one of the app's routes or ``other``, so random paths cannot blow up cardinality.

Each app has its own registry (several apps in one process, as in the tests, count apart). With
``PROMETHEUS_MULTIPROC_DIR`` set when the process starts, ``prometheus_client``'s multiprocess mode
is on: every process writes its values to files in that folder and ``/metrics`` reports the sum over
all processes that wrote there — the Ray engine sets it for its replicas (one folder per deployment,
:func:`paramcast.cloud.rayserve.deploy`), so any replica answers a scrape with the whole
deployment's counts on that machine. In that mode, apps of one process share their values.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["ADAPT_STAGES", "MULTIPROC_ENV", "Metrics", "MetricsMiddleware"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
ADAPT_STAGES = ("read_check", "batch", "encode")


class Metrics:
    def __init__(self, routes: tuple[str, ...]):
        self.routes = set(routes)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir:  # before the first metric: its values live in files there
            Path(self.multiprocess_dir).mkdir(parents=True, exist_ok=True)
        self.registry = CollectorRegistry()
        reg = {"registry": self.registry}
        self.requests = Counter("paramcast_requests", "Requests by route and status.", ["route", "status"], **reg)
        self.latency = Histogram("paramcast_request_seconds", "Request latency.", ["route"], buckets=LATENCY_BUCKETS,
                                 **reg)
        self.bytes_in = Counter("paramcast_request_bytes", "Body bytes received.", ["route"], **reg)
        self.bytes_out = Counter("paramcast_response_bytes", "Body bytes sent.", ["route"], **reg)
        self.batch_size = Histogram("paramcast_batch_size", "Uploads answered per generator call.",
                                    buckets=BATCH_BUCKETS, **reg)
        self.generate = Histogram("paramcast_generate_seconds", "Time of one generator call.",
                                  buckets=LATENCY_BUCKETS, **reg)
        self.adapt_stage = Histogram(
            "paramcast_adapt_stage_seconds",
            "Where a successful /v1/adapt spends its time in the handler: read_check (body read, decode, checks), "
            "batch (queued for the batcher, generated, handed back to the event loop), encode (queued on the "
            "encoder thread, encoded, handed back).", ["stage"], buckets=LATENCY_BUCKETS, **reg)
        self._stages = [self.adapt_stage.labels(stage=stage) for stage in ADAPT_STAGES]  # no label lookup per request
        if self.multiprocess_dir:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, self.multiprocess_dir)
        else:
            self._exposed = self.registry

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe_request(self, route: str, status: int, seconds: float, n_in: int, n_out: int) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        self.bytes_in.labels(route=route).inc(n_in)
        self.bytes_out.labels(route=route).inc(n_out)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.generate.observe(seconds)

    def observe_stages(self, t: list[float]) -> None:
        """``t``: the handler's perf_counter at entry, after the checks, after the batch, after encoding
        (a static answer's handler stops after the checks)."""
        for child, a, b in zip(self._stages, t, t[1:], strict=False):  # static: read_check only
            child.observe(b - a)

    def value(self, name: str, **labels: str) -> float | None:
        """One exposed sample, e.g. ``value("paramcast_batch_size_count")`` (None when absent)."""
        return self._exposed.get_sample_value(name, labels)

    def render(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        return generate_latest(self._exposed).decode()


class MetricsMiddleware:
    """Pure ASGI middleware: counts status, latency and body bytes of every HTTP request."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"in": 0, "out": 0, "status": 500}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.observe_request(self.metrics.route(scope.get("path", "")), state["status"],
                                         time.perf_counter() - t0, state["in"], state["out"])
