"""The adaptive downlink: link estimate, choice, accuracy costs, and DeviceClient(quant="auto").

Everything runs on a fake clock with fake transfer figures: no timing, no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch

import toy_service as toy
from paramcast.device import DeviceClient
from paramcast.device.downlink import (
    COSTS_PATH,
    MB,
    DownlinkPolicy,
    LinkEstimate,
    LinkEstimator,
    accuracy_costs,
    costs_from_result,
)

RESULT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "videoqa_standard.json"
# The generated 96 -> 1500 head on the wire, per quantisation (paramcast.wire.encode sizes).
SIZES = {"fp32": 582_464, "fp16": 291_464, "int8": 148_718, "nf4": 75_960}


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1e3


def test_estimator_window_age_and_ratio_of_sums():
    clock = FakeClock()
    est = LinkEstimator(window=3, max_age_s=10.0, clock=clock)
    assert est.estimate() is None
    est.observe(582_464, 45.0, 1000.0, "fp32")  # a slow big answer...
    est.observe(75_960, 41.0, 10.0, "nf4")      # ...and a fast small one
    e = est.estimate()
    assert e.samples == 2 and e.first_byte_ms == pytest.approx(43.0)
    # Bytes-weighted: (582464 + 75960) B / 1.01 s, not the mean of the two rates.
    assert e.goodput_bytes_s == pytest.approx((582_464 + 75_960) / 1.010)
    for _ in range(3):
        est.observe(75_960, 40.0, 10.0, "nf4")
    assert est.estimate().goodput_bytes_s == pytest.approx(75_960 / 0.010)  # window of 3: the fp32 one left
    clock.advance_ms(10_001)
    assert est.estimate() is None                                        # all older than max_age_s
    est.observe(1000, 40.0, 0.0, "nf4")
    assert est.estimate().goodput_bytes_s is None                        # body came with the headers
    with pytest.raises(ValueError):
        est.observe(-1, 1.0, 1.0, "fp32")


def test_first_byte_time_is_per_quant_where_seen():
    est = LinkEstimator(clock=FakeClock())
    for fb, q in ((40.0, "fp32"), (42.0, "fp32"), (95.0, "nf4")):  # nf4 costs the cloud 55 ms to encode
        est.observe(100_000, fb, 10.0, q)
    e = est.estimate()
    assert e.first_byte_ms == 42.0 and e.first_byte_by_quant == {"fp32": 41.0, "nf4": 95.0}
    assert e.first_byte("nf4") == 95.0 and e.first_byte("int8") == 42.0
    d = DownlinkPolicy(budget_ms=100.0).choose(e, SIZES)
    g = e.goodput_bytes_s
    assert d.expected_ms["nf4"] == pytest.approx(95.0 + SIZES["nf4"] / g * 1e3)
    assert d.expected_ms["int8"] == pytest.approx(42.0 + SIZES["int8"] / g * 1e3)
    assert d.first_byte_by_quant == e.first_byte_by_quant


def test_no_measurement_asks_for_the_default():
    d = DownlinkPolicy().choose(None, SIZES)
    assert d.quant == "fp32" and "no answer measured" in d.reason and d.samples == 0 and not d.expected_ms
    d = DownlinkPolicy().choose(LinkEstimate(40.0, 1e6, 1), {})
    assert d.quant == "fp32" and "sizes not known" in d.reason


@pytest.mark.parametrize(("goodput_mb_s", "budget_ms", "want"), [
    (100.0, 150.0, "fp32"),   # 40 + 5.6 ms
    (4.0, 150.0, "fp16"),     # fp32 178.9 ms, fp16 109.5 ms
    (1.5, 150.0, "int8"),     # fp16 225 ms, int8 134.6 ms
    (0.9, 150.0, "nf4"),      # int8 197.6 ms, nf4 120.5 ms
    (0.2, 150.0, "nf4"),      # nothing fits: the fastest
    (100.0, 45.0, "fp16"),    # a tight budget: fp32 45.55 ms > 45, fp16 42.8 ms
])
def test_most_precise_quant_within_the_budget(goodput_mb_s, budget_ms, want):
    est = LinkEstimate(first_byte_ms=40.0, goodput_bytes_s=goodput_mb_s * MB, samples=8)
    d = DownlinkPolicy(budget_ms=budget_ms).choose(est, SIZES)
    assert d.quant == want, d
    for q, ms in d.expected_ms.items():
        assert ms == pytest.approx(40.0 + SIZES[q] / (goodput_mb_s * MB) * 1e3)
    fits = [q for q in ("fp32", "fp16", "int8", "nf4") if d.expected_ms[q] <= budget_ms]
    assert (fits[0] if fits else "nf4") == want
    assert ("fastest" in d.reason) == (not fits)
    assert d.first_byte_ms == 40.0 and d.goodput_mb_s == pytest.approx(goodput_mb_s) and d.samples == 8
    assert DownlinkPolicy(budget_ms=budget_ms).choose(est, SIZES) == d  # deterministic


def test_accuracy_ceiling_removes_costly_quants():
    costs = {"fp16": 0.03, "int8": 1.56, "nf4": 1.49}  # f-hyper's in the committed benchmark
    est = LinkEstimate(40.0, 0.9 * MB, 8)
    d = DownlinkPolicy(budget_ms=150.0, max_cost_points=1.0, costs=costs).choose(est, SIZES)
    assert d.allowed == ("fp32", "fp16") and d.quant == "fp16" and set(d.expected_ms) == {"fp32", "fp16"}
    assert "fastest" in d.reason  # fp16 needs 348 ms, but int8 and nf4 cost too much accuracy
    loose = DownlinkPolicy(budget_ms=150.0, max_cost_points=2.0, costs=costs).choose(est, SIZES)
    assert loose.quant == "nf4"
    assert DownlinkPolicy(costs={"fp16": 0.0}).allowed == ("fp32", "fp16")  # unknown cost: not allowed


def test_packaged_costs_are_the_committed_benchmarks():
    if not RESULT.exists():
        pytest.skip(f"{RESULT} is not in this checkout")
    packaged = json.loads(COSTS_PATH.read_text())
    assert packaged["costs"] == costs_from_result(json.loads(RESULT.read_text())), (
        f"{COSTS_PATH.name} is stale: run `{packaged['command']}`")
    table = packaged["costs"]
    assert set(accuracy_costs("cdc-mmpg")) == {"fp32", "fp16", "int8", "nf4"}
    worst = accuracy_costs("not-benchmarked")
    assert all(worst[q] == max(t[q] for t in table.values()) for q in ("fp16", "int8", "nf4"))


# ------------------------------------------------------------------------- DeviceClient, fake link
class _Body(httpx.SyncByteStream):
    """A response body whose reading takes len / goodput on the fake clock."""

    def __init__(self, data: bytes, clock: FakeClock, goodput_b_s: float):
        self.data, self.clock, self.goodput = data, clock, goodput_b_s

    def __iter__(self):
        self.clock.advance_ms(len(self.data) / self.goodput * 1e3)
        yield self.data


def _fake_cloud(clock: FakeClock, first_byte_ms: float, goodput_b_s: float, asked: list[str]):
    cloud = toy.ToyHyper()

    def handler(request: httpx.Request) -> httpx.Response:
        from paramcast import wire

        upload = wire.decode(request.content)
        quant = request.url.params["quant"]
        asked.append(quant)
        clock.advance_ms(first_byte_ms)
        return httpx.Response(200, stream=_Body(wire.encode(cloud.cloud_step(upload), quant=quant), clock, goodput_b_s))

    return httpx.MockTransport(handler)


def _batch():
    return {"x": torch.randn(6, toy.C, generator=torch.Generator().manual_seed(0))}


def test_client_auto_quant_follows_its_own_measurements():
    from paramcast import wire

    clock, asked = FakeClock(), []
    method = toy.ToyHyper()
    sizes = {q: len(wire.encode(toy.ToyHyper().cloud_step(method.device_step(_batch())), quant=q))
             for q in ("fp32", "fp16", "int8", "nf4")}
    goodput = 5_000.0  # B/s: the toy head's 556 fp32 bytes take 111 ms
    budget = 40.0 + (sizes["fp32"] + sizes["fp16"]) / 2 / goodput * 1e3  # fp32 just misses it, fp16 fits
    with DeviceClient(method, "http://cloud", "tok", quant="auto", budget_ms=budget, costs=dict.fromkeys(sizes, 0.0),
                      clock=clock, transport=_fake_cloud(clock, 40.0, goodput, asked)) as client:
        first = client.adapt(_batch())
        assert first.source == "cloud" and first.quant == "fp32" and "no answer measured" in first.downlink.reason
        second = client.adapt(_batch())
    d = second.downlink
    assert second.source == "cloud" and asked == ["fp32", second.quant]
    assert d.first_byte_ms == pytest.approx(40.0) and d.goodput_mb_s * MB == pytest.approx(goodput)
    # Sizes from shapes + the last answer's header bytes: fp32 exact, the others within the few hundred
    # header bytes that int8/nf4 add (their block scales are counted; their metadata is not).
    assert d.sizes["fp32"] == sizes["fp32"]
    assert all(abs(d.sizes[q] - sizes[q]) <= 512 for q in sizes)
    assert d.expected_ms["fp32"] > budget >= d.expected_ms["fp16"]
    assert second.quant == "fp16" and d.allowed == ("fp32", "fp16", "int8", "nf4")
    # By default the costs are the committed benchmark's; toy-hyper is not in it: the worst method's.
    assert DeviceClient(toy.ToyHyper(), "http://cloud", "tok", quant="auto").policy.costs == accuracy_costs("toy-hyper")
    with pytest.raises(ValueError):
        DeviceClient(toy.ToyHyper(), "http://cloud", "tok", quant="auto", budget_ms=0)
