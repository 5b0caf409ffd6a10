"""The adaptive downlink: ask for the quantisation whose expected adaptation time fits a budget.

The device measures its link from its own adapt calls only (no probes): for each answer, the time
from sending the request to the response's headers (``first_byte_ms``: one round trip plus the
upload and the cloud's work) and from the headers to the last byte (``body_ms``). Over the last
``window`` answers (at most ``max_age_s`` old) it estimates

* ``first_byte_ms``: the median of the first-byte times (per quantisation where the window has
  answers in it, since the cloud's encoding time differs per quantisation; else of all), and
* ``goodput``: bytes received / body time, summed over the window (a ratio of sums, so one large
  slow answer weighs by its bytes, not as one vote among many small fast ones);

and expects an answer of ``B`` bytes in quantisation ``q`` to take ``first_byte_ms(q) + B / goodput``. Before each call,
:meth:`DownlinkPolicy.choose` takes the quantisations whose accuracy cost is within
``max_cost_points`` and asks for the most precise one (fp32, fp16, int8, nf4 in that order)
whose expected time is within ``budget_ms``; when none is, the one expected fastest. With nothing
measured yet it asks for ``default`` (fp32). The choice depends only on the figures it is given:
deterministic, and tested with a fake clock and fake transfers (tests/device/test_downlink.py).

Accuracy costs are the committed video-QA benchmark's (benchmarks/results/videoqa_standard.json,
``methods[m].downlink[q].drop_points``): a quantisation's cost for a method is the larger of its
drops on new and unseen devices, in accuracy points; a method the benchmark does not list gets the
worst cost of any method. They are copied into ``downlink_costs.json`` next to this file (the
package does not ship benchmarks/) by ``python -m paramcast.device.downlink
benchmarks/results/videoqa_standard.json``; a test fails when the copy and the result disagree.

Decisions where the issue is silent: the budget covers the network part of an adaptation as the
device sees it (first byte + body), not ``device_step`` or applying the update; fp32 always
qualifies (cost 0); no hysteresis: after a window of fast small answers the estimate may let a
larger quantisation back in, which is how the device notices that the link got better.

This module imports only the standard library, so ``paramcast bench link``'s client role (which
does not import paramcast, to start in 0.1 s) runs the same policy by loading this file.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_BUDGET_MS", "DEFAULT_MAX_COST_POINTS", "QUANT_ORDER", "DownlinkDecision", "DownlinkPolicy",
           "LinkEstimate", "LinkEstimator", "accuracy_costs", "costs_from_result"]

QUANT_ORDER: tuple[str, ...] = ("fp32", "fp16", "int8", "nf4")  # most precise first (paramcast.types.QUANTS)
DEFAULT_BUDGET_MS = 150.0
DEFAULT_MAX_COST_POINTS = 1.0
COSTS_PATH = Path(__file__).with_name("downlink_costs.json")
MB = 1024 * 1024


# ----------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class Transfer:
    finished_s: float    # the estimator's clock when the answer was complete
    bytes_down: int      # response body bytes
    first_byte_ms: float  # request sent -> response headers
    body_ms: float       # response headers -> last byte
    quant: str


@dataclass(frozen=True)
class LinkEstimate:
    first_byte_ms: float           # median over the window
    goodput_bytes_s: float | None  # None: the bodies arrived with their headers (no body time to divide by)
    samples: int
    first_byte_by_quant: dict[str, float] = field(default_factory=dict)  # median per quantisation seen

    def first_byte(self, quant: str) -> float:
        """First-byte time expected for ``quant``: its own median where seen (the cloud's encoding
        time differs per quantisation), else the window's."""
        return self.first_byte_by_quant.get(quant, self.first_byte_ms)


class LinkEstimator:
    """The recent link as the device's own adapt calls saw it (see the module doc)."""

    def __init__(self, window: int = 8, max_age_s: float = 120.0, clock: Callable[[], float] = time.monotonic):
        if window < 1 or max_age_s <= 0:
            raise ValueError(f"window must be >= 1 and max_age_s > 0, got {window} and {max_age_s}")
        self.max_age_s, self.clock = max_age_s, clock
        self._samples: deque[Transfer] = deque(maxlen=window)

    def observe(self, bytes_down: int, first_byte_ms: float, body_ms: float, quant: str) -> None:
        if bytes_down < 0 or first_byte_ms < 0 or body_ms < 0:
            raise ValueError("bytes and times must be >= 0")
        self._samples.append(Transfer(self.clock(), bytes_down, first_byte_ms, body_ms, quant))

    def samples(self) -> list[Transfer]:
        now = self.clock()
        return [s for s in self._samples if now - s.finished_s <= self.max_age_s]

    def estimate(self) -> LinkEstimate | None:
        recent = self.samples()
        if not recent:
            return None
        body_s = sum(s.body_ms for s in recent) / 1e3
        goodput = sum(s.bytes_down for s in recent) / body_s if body_s > 1e-4 else None
        by_quant = {q: statistics.median(s.first_byte_ms for s in recent if s.quant == q)
                    for q in dict.fromkeys(s.quant for s in recent)}
        return LinkEstimate(statistics.median(s.first_byte_ms for s in recent), goodput, len(recent), by_quant)


# ----------------------------------------------------------------------------------- accuracy cost
def costs_from_result(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{method: {quant: cost in accuracy points}}`` from a ``paramcast bench videoqa`` result."""
    out: dict[str, dict[str, float]] = {}
    for name, m in result["methods"].items():
        downlink = m.get("downlink") if isinstance(m, Mapping) else None
        if downlink:
            out[name] = {"fp32": 0.0} | {q: max(float(v) for v in d["drop_points"].values())
                                         for q, d in downlink.items()}
    return out


def accuracy_costs(method: str | None = None, path: Path = COSTS_PATH) -> dict[str, float]:
    """Cost per quantisation for ``method`` (the worst of every method's when it is not listed)."""
    table: dict[str, dict[str, float]] = json.loads(path.read_text())["costs"]
    if method in table:
        return dict(table[method])
    return {q: max(t.get(q, 0.0) for t in table.values()) for q in QUANT_ORDER}


# -------------------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class DownlinkDecision:
    """The quantisation asked for, and every figure the choice was made from."""

    quant: str
    reason: str
    budget_ms: float
    max_cost_points: float
    first_byte_ms: float | None
    goodput_mb_s: float | None
    samples: int
    sizes: dict[str, int] = field(default_factory=dict)          # answer bytes per quantisation
    expected_ms: dict[str, float] = field(default_factory=dict)  # per allowed quantisation
    costs: dict[str, float] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()
    first_byte_by_quant: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"allowed": list(self.allowed)}


class DownlinkPolicy:
    """Most precise quantisation within the accuracy ceiling whose expected time fits the budget."""

    def __init__(self, budget_ms: float = DEFAULT_BUDGET_MS, max_cost_points: float = DEFAULT_MAX_COST_POINTS,
                 costs: Mapping[str, float] | None = None, default: str = "fp32"):
        if not budget_ms > 0:
            raise ValueError(f"budget_ms must be > 0, got {budget_ms}")
        if default not in QUANT_ORDER:
            raise ValueError(f"default must be one of {QUANT_ORDER}, got {default!r}")
        self.budget_ms, self.max_cost_points, self.default = budget_ms, max_cost_points, default
        self.costs = {q: 0.0 for q in QUANT_ORDER} if costs is None else {"fp32": 0.0, **costs}
        self.allowed = tuple(q for q in QUANT_ORDER if q == "fp32" or self.costs.get(q, float("inf")) <= max_cost_points)

    def choose(self, estimate: LinkEstimate | None, sizes: Mapping[str, int]) -> DownlinkDecision:
        base = {"budget_ms": self.budget_ms, "max_cost_points": self.max_cost_points, "costs": dict(self.costs),
                "allowed": self.allowed, "sizes": dict(sizes)}
        candidates = [q for q in self.allowed if q in sizes]
        if estimate is None or not candidates:
            why = "no answer measured yet" if estimate is None else "answer sizes not known yet"
            return DownlinkDecision(self.default, f"{why}: default", first_byte_ms=None, goodput_mb_s=None,
                                    samples=0 if estimate is None else estimate.samples, **base)
        g = estimate.goodput_bytes_s
        expected = {q: estimate.first_byte(q) + (sizes[q] / g * 1e3 if g else 0.0) for q in candidates}
        fits = [q for q in candidates if expected[q] <= self.budget_ms]
        if fits:
            quant, reason = fits[0], f"most precise within {self.budget_ms:g} ms"
        else:
            quant = min(candidates, key=lambda q: (expected[q], QUANT_ORDER.index(q)))
            reason = f"none fits {self.budget_ms:g} ms: the fastest"
        return DownlinkDecision(quant, reason, first_byte_ms=estimate.first_byte_ms,
                                first_byte_by_quant=dict(estimate.first_byte_by_quant),
                                goodput_mb_s=g / MB if g else None, samples=estimate.samples,
                                expected_ms=expected, **base)


def _write_costs(result_path: Path, out: Path = COSTS_PATH) -> None:
    result = json.loads(result_path.read_text())
    out.write_text(json.dumps({
        "source": str(result_path), "source_command": result.get("command"),
        "command": f"python -m paramcast.device.downlink {result_path}",
        "cost": "max over new/unseen devices of the accuracy drop vs fp32, in points",
        "costs": costs_from_result(result)}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import sys

    _write_costs(Path(sys.argv[1]))
    print(f"wrote {COSTS_PATH}")
