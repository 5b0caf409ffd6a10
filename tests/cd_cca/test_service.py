"""CD-CCA served to two devices through the real HTTP service (uvicorn on loopback).

The service holds one cloud half (per-device student copy and delta base, keyed by device_id); each
device holds its own device half. Each device gets its own delta, quantised through ``wire``; one
device's round never changes the other's model (on the device or in the cloud).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from paramcast import wire
from paramcast.cloud import Batching, TokenStore, create_app
from paramcast.device import DeviceClient
from paramcast.methods.cd_cca import CDCCA, adapter_parameters
from paramcast.models.mllm_tasks import make_batch
from paramcast.types import Upload, WeightDelta
from toy_service import TOKENS, LiveServer

from .conftest import small_config
from .synth import synth_clips


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def served(pre):
    method = CDCCA(pre, small_config())
    tokens = TokenStore()
    for dev, tok in TOKENS.items():
        tokens.add_token(dev, tok)
    app = create_app(method, tokens=tokens, batching=Batching(max_batch=4, max_wait_ms=1))
    server = LiveServer(app)
    yield method, server
    server.stop()
    app.state.close()


def test_two_devices_get_their_own_deltas_and_never_touch_each_other(pre, served):
    method, server = served
    cloud = method.cloud_half()
    a, b = method.device_half("dev-a"), method.device_half("dev-b")
    batch_a = make_batch(pre.encoder, synth_clips(12, pre.vocab, seed=1, size=32))
    batch_b = make_batch(pre.encoder, synth_clips(12, pre.vocab, seed=2, size=32))
    test = make_batch(pre.encoder, synth_clips(8, pre.vocab, seed=3, size=32))
    b_before, b_logits = _params(b.model), b.predict(test)

    kw = {"deadline_s": 120.0, "attempt_timeout_s": 120.0}
    with DeviceClient(a, server.url, TOKENS["dev-a"], **kw) as ca, DeviceClient(b, server.url, TOKENS["dev-b"], **kw) as cb:
        ra = ca.adapt(batch_a)
        assert ra.source == "cloud", ra.error
        assert isinstance(ca.last_good, WeightDelta) and ca.last_good.quant == "nf4"  # DWC's NF4, through wire
        assert ra.quant == "nf4"                     # the result says what travelled (the client asked fp32)
        info = ca.info()                             # the history labels an MLLM takes: its answer classes
        assert info["num_labels"] == pre.teacher.layout.n_answers < wire.MAX_INDEX
        assert ca.last_good.device_id == "dev-a" and a.version == 1
        # dev-a's round changed dev-a's model only: dev-b's device model and answers are untouched
        assert _same(b_before, _params(b.model)) and torch.equal(b.predict(test), b_logits)
        assert "dev-b" not in cloud.devices
        a_cloud = _params(cloud.devices["dev-a"].student)
        a_after = _params(a.model)

        rb = cb.adapt(batch_b)
        assert rb.source == "cloud", rb.error
        assert cb.last_good.device_id == "dev-b" and b.version == 1
        # dev-b's round moved neither dev-a's device model nor dev-a's cloud student
        assert _same(a_after, _params(a.model))
        assert _same(a_cloud, _params(cloud.devices["dev-a"].student))
        assert not torch.equal(b.predict(test), b_logits)

        # each device got its own delta: different values, each applied on its own base
        da, db = ca.last_good.deltas, cb.last_good.deltas
        assert da and db and any(not torch.equal(da[k], db[k]) for k in set(da) & set(db))
        # what the cloud believes each device holds is what it holds (up to fp32 addition order)
        for dev, half in (("dev-a", a), ("dev-b", b)):
            held, got = cloud.devices[dev].held, adapter_parameters(half.model)
            assert all(torch.allclose(held[k], got[k], atol=1e-6) for k in got)

        # a second round of dev-a builds on its first: base v1 -> v2
        ra2 = ca.adapt(batch_a)
        assert ra2.source == "cloud" and ca.last_good.base_version == "v1" and a.version == 2


def test_bad_token_indices_and_stale_versions_are_4xx(pre, served):
    import httpx

    method, server = served
    dev = method.device_half("dev-a")
    up = dev.device_step(make_batch(pre.encoder, synth_clips(6, pre.vocab, seed=4, size=32)))
    hdr = {"Authorization": f"Bearer {TOKENS['dev-a']}", "Content-Type": "application/octet-stream"}
    cases = {
        "positions": dataclasses.replace(up, positions=up.positions + 10_000),
        "text": dataclasses.replace(up, text=up.text + 10_000),
        "version": dataclasses.replace(up, model_version="v5"),
        "no text": Upload(**{f.name: getattr(up, f.name) for f in dataclasses.fields(Upload) if f.name != "text"}),
    }
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for what, bad in cases.items():
            r = http.post("/v1/adapt", content=wire.encode(bad), headers=hdr)
            assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
        assert http.post("/v1/adapt", content=wire.encode(up), headers=hdr).status_code == 200
