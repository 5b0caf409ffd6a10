"""Prometheus text-format metrics, hand-written (no extra dependency), plus the ASGI middleware.

Exported at ``GET /metrics``:

* ``paramcast_requests_total{route,status}``          counter
* ``paramcast_request_seconds{route}``                 histogram of request latency
* ``paramcast_request_bytes_total{route}``             counter of body bytes received
* ``paramcast_response_bytes_total{route}``            counter of body bytes sent
* ``paramcast_batch_size``                             histogram of generator batch sizes
* ``paramcast_generate_seconds``                       histogram of generator call time

``route`` is one of the app's routes or ``other``, so random paths cannot blow up cardinality.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import defaultdict

__all__ = ["Metrics", "MetricsMiddleware"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, acc = [], 0
        sep = "," if labels else ""
        for b, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {acc}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        lab = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{lab} {self.sum:.6f}", f"{name}_count{lab} {self.n}"]
        return out


class Metrics:
    def __init__(self, routes: tuple[str, ...]):
        self.routes = set(routes)
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.batch_size = _Histogram(BATCH_BUCKETS)
        self.generate = _Histogram(LATENCY_BUCKETS)

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe_request(self, route: str, status: int, seconds: float, n_in: int, n_out: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)
            self.bytes_in[route] += n_in
            self.bytes_out[route] += n_out

    def observe_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.generate.observe(seconds)

    def render(self) -> str:
        with self._lock:
            out = ["# HELP paramcast_requests_total Requests by route and status.",
                   "# TYPE paramcast_requests_total counter"]
            out += [f'paramcast_requests_total{{route="{r}",status="{s}"}} {n}'
                    for (r, s), n in sorted(self.requests.items())]
            out += ["# HELP paramcast_request_seconds Request latency.", "# TYPE paramcast_request_seconds histogram"]
            for r, h in sorted(self.latency.items()):
                out += h.lines("paramcast_request_seconds", f'route="{r}"')
            for name, d, what in (("paramcast_request_bytes_total", self.bytes_in, "received"),
                                  ("paramcast_response_bytes_total", self.bytes_out, "sent")):
                out += [f"# HELP {name} Body bytes {what}.", f"# TYPE {name} counter"]
                out += [f'{name}{{route="{r}"}} {n}' for r, n in sorted(d.items())]
            out += ["# HELP paramcast_batch_size Uploads answered per generator call.",
                    "# TYPE paramcast_batch_size histogram"]
            out += self.batch_size.lines("paramcast_batch_size", "")
            out += ["# HELP paramcast_generate_seconds Time of one generator call.",
                    "# TYPE paramcast_generate_seconds histogram"]
            out += self.generate.lines("paramcast_generate_seconds", "")
        return "\n".join(out) + "\n"


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
