"""The device's HTTP client: upload, verify, apply — and never be left without a working head.

    client = DeviceClient(method, "http://cloud:8000", token)
    result = client.adapt(batch)          # AdaptResult(source="cloud" | "last_good" | "static", ...)
    logits = method.predict(batch)

Each :meth:`DeviceClient.adapt` builds the upload with ``method.device_step``, posts it over one
keep-alive connection (``TCP_NODELAY``: a small upload otherwise waits ~40 ms for Nagle, docs/design.md),
retries with exponential backoff inside a deadline, verifies the answer (``wire.decode`` checks the
sha256, shapes and finiteness; the update must be for this device) and applies it. When the cloud is
slow, unreachable, refuses or answers garbage, the device keeps the last good update, or goes back
to its static head (``method.reset()``) if it never had one.

``quant="auto"`` makes the downlink adapt to the link (:mod:`paramcast.device.downlink`): before
each call the device picks the most precise quantisation whose expected time, from the goodput and
first-byte time of its own recent answers, fits ``budget_ms``, among those whose accuracy cost (the
committed benchmark's) is within ``max_cost_points``. ``AdaptResult.quant`` / ``.downlink`` say what
it asked for and from which figures.
"""

from __future__ import annotations

import random
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from paramcast import wire
from paramcast.device.downlink import (
    DEFAULT_BUDGET_MS,
    DEFAULT_MAX_COST_POINTS,
    DownlinkDecision,
    DownlinkPolicy,
    LinkEstimator,
    accuracy_costs,
)
from paramcast.methods.base import Method
from paramcast.types import QUANTS, HeadParams, Update, WeightDelta
from paramcast.wire.history import encode_history

__all__ = ["AdaptResult", "DeviceClient", "DeviceError"]

Source = Literal["cloud", "last_good", "static", "local"]
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
AUTO = "auto"


class DeviceError(RuntimeError):
    """The cloud refused a request the device cannot fix by retrying (e.g. 401/403/4xx)."""


@dataclass(frozen=True)
class AdaptResult:
    source: Source       # where the head in use now came from ("local": the method uploads nothing)
    latency_ms: float    # from device_step's upload to the update applied (or the fallback chosen)
    attempts: int        # HTTP attempts made
    bytes_up: int        # body bytes sent (all attempts)
    bytes_down: int      # body bytes received (all attempts)
    error: str | None = None  # why the cloud's answer was not used, if it was not
    quant: str | None = None  # how the update in use travelled (the decoded answer's ``quant``: CD-CCA's DWC
                              # sends NF4 whatever was asked); without an answer, the quantisation asked for
    downlink: DownlinkDecision | None = None  # with quant="auto": the choice and its inputs


class DeviceClient:
    """One device talking to one cloud service.

    ``deadline_s``: total time one :meth:`adapt` may spend on the network (all attempts);
    ``attempt_timeout_s``: per attempt; ``backoff_s``: first retry delay, doubled each time (with
    jitter). ``quant``: the downlink quantisation to ask for, or ``"auto"`` (module doc; ``budget_ms``,
    ``max_cost_points``, ``costs`` (default: the committed benchmark's for ``method.name``), ``clock``
    (seconds, for the link measurements; a test passes a fake one)).
    """

    def __init__(self, method: Method, base_url: str, token: str, *, quant: str = "fp32",
                 deadline_s: float = 2.0, attempt_timeout_s: float = 1.0, max_attempts: int = 4,
                 backoff_s: float = 0.05, max_response_bytes: int = 64 * 2**20,
                 transport: httpx.BaseTransport | None = None, budget_ms: float = DEFAULT_BUDGET_MS,
                 max_cost_points: float = DEFAULT_MAX_COST_POINTS, costs: dict[str, float] | None = None,
                 clock=time.perf_counter):
        if quant not in (*QUANTS, AUTO):
            raise ValueError(f"quant must be one of {(*QUANTS, AUTO)}, got {quant!r}")
        if deadline_s <= 0 or attempt_timeout_s <= 0 or max_attempts < 1 or backoff_s < 0:
            raise ValueError("deadline_s and attempt_timeout_s must be > 0, max_attempts >= 1, backoff_s >= 0")
        self.method = method
        self.quant = quant
        self.deadline_s = deadline_s
        self.attempt_timeout_s = attempt_timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_response_bytes = max_response_bytes
        self.last_good: Update | None = None
        self.results: list[AdaptResult] = []
        self.clock = clock
        self.link = LinkEstimator(clock=clock)
        self.policy = DownlinkPolicy(budget_ms, max_cost_points,
                                     accuracy_costs(method.name) if costs is None else costs) if quant == AUTO else None
        self._last_answer: tuple[int, str] | None = None  # (bytes, quant) of the last good answer
        transport = transport or httpx.HTTPTransport(socket_options=_NODELAY, retries=0)
        self._http = httpx.Client(base_url=base_url, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"},
                                  timeout=httpx.Timeout(attempt_timeout_s))

    # ---- adaptation ------------------------------------------------------------------------
    def adapt(self, batch: Any) -> AdaptResult:
        """Adapt the method to ``batch`` through the cloud (or fall back); see the module doc."""
        t0 = time.perf_counter()
        upload = self.method.device_step(batch)
        if upload is None:
            return self._record(AdaptResult("local", (time.perf_counter() - t0) * 1e3, 0, 0, 0))
        body = wire.encode(upload)
        decision = self.policy.choose(self.link.estimate(), self._answer_sizes()) if self.policy else None
        quant = decision.quant if decision else self.quant
        deadline = time.monotonic() + self.deadline_s
        attempts = up = down = 0
        error = "deadline passed before the first attempt"
        while attempts < self.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = f"deadline of {self.deadline_s:g} s passed ({error})"
                break
            attempts += 1
            up += len(body)
            retry = True
            try:
                r = self._post_timed(body, quant, min(remaining, self.attempt_timeout_s))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                down += len(r.content)
                if r.status_code == 200:
                    try:
                        update = self._verify(r.content, upload.device_id)
                        self.method.apply(update)
                    except (ValueError, TypeError, RuntimeError) as exc:  # WireError is a ValueError
                        error = f"unusable answer: {exc}"
                    else:
                        self.last_good = update
                        self._last_answer = len(r.content), update.quant     # what travelled, not what was asked
                        return self._record(AdaptResult("cloud", (time.perf_counter() - t0) * 1e3, attempts, up, down,
                                                        quant=update.quant, downlink=decision))
                else:
                    error = f"HTTP {r.status_code}: {r.text[:300]}"
                    retry = r.status_code in (408, 429) or r.status_code >= 500
            if not retry:
                break
            delay = self.backoff_s * 2 ** (attempts - 1) * (0.5 + random.random())
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
        source = self._fall_back()
        return self._record(AdaptResult(source, (time.perf_counter() - t0) * 1e3, attempts, up, down, error,
                                        quant=quant, downlink=decision))

    def _post_timed(self, body: bytes, quant: str, timeout: float) -> httpx.Response:
        """POST the upload; a complete 200 answer feeds the link estimate (first byte, body time)."""
        t_sent = self.clock()
        with self._http.stream("POST", "/v1/adapt", content=body, params={"quant": quant},
                               headers={"Content-Type": "application/octet-stream"}, timeout=timeout) as r:
            t_head = self.clock()
            r.read()
        t_done = self.clock()
        if r.status_code == 200:
            self.link.observe(len(r.content), (t_head - t_sent) * 1e3, (t_done - t_head) * 1e3, quant)
        return r

    def _answer_sizes(self) -> dict[str, int]:
        """Answer bytes per quantisation: the last good update's tensor bytes in each (``wire.tensor_nbytes``,
        from shapes alone) plus the header bytes the last answer had beyond its own tensor bytes."""
        if self.last_good is None or self._last_answer is None:
            return {}
        n, asked = self._last_answer
        header = max(0, n - wire.tensor_nbytes(self.last_good, quant=asked))
        return {q: wire.tensor_nbytes(self.last_good, quant=q) + header for q in QUANTS}

    def _verify(self, data: bytes, device_id: str) -> Update:
        update = wire.decode(data, max_bytes=self.max_response_bytes)
        if not isinstance(update, HeadParams | WeightDelta):
            raise ValueError(f"the cloud answered a {type(update).__name__}, not an update")
        if update.device_id and update.device_id != device_id:
            raise ValueError(f"the update is for device {update.device_id!r}, not {device_id!r}")
        return update

    def _fall_back(self) -> Source:
        if self.last_good is not None:
            self.method.apply(self.last_good)
            return "last_good"
        self.method.reset()
        return "static"

    def _record(self, result: AdaptResult) -> AdaptResult:
        self.results.append(result)
        return result

    # ---- history and info ------------------------------------------------------------------
    def upload_history(self, device_id: str, task: str, features, labels, question=None) -> dict:
        """Send labelled samples to the cloud's history; returns the cloud's receipt."""
        body = encode_history(device_id, task, features, labels, question)
        r = self._http.post("/v1/history", content=body, headers={"Content-Type": "application/octet-stream"},
                            timeout=max(self.attempt_timeout_s, 10.0))
        if r.status_code != 200:
            raise DeviceError(f"history upload refused: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def info(self) -> dict:
        r = self._http.get("/v1/info")
        r.raise_for_status()
        return r.json()

    def latency_summary(self) -> dict[str, float]:
        """p50 / p99 / mean latency (ms) and how often each source served, over every adapt call."""
        lat = sorted(r.latency_ms for r in self.results)
        if not lat:
            return {}
        out = {"calls": len(lat), "p50_ms": statistics.median(lat), "mean_ms": statistics.fmean(lat),
               "p99_ms": lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]}
        for src in ("cloud", "last_good", "static", "local"):
            out[src] = sum(r.source == src for r in self.results)
        return out

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
