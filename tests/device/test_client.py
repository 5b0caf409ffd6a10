"""DeviceClient against a real server on loopback: adapt, history, and every fallback."""

from __future__ import annotations

import httpx
import pytest
import torch

import toy_service as toy
from paramcast.device import DeviceClient, DeviceError
from toy_service import TOKENS, free_port


def _batch(seed=0):
    return {"x": torch.randn(6, toy.C, generator=torch.Generator().manual_seed(seed))}


def test_adapt_applies_the_cloud_head(live_server):
    method = toy.ToyHyper()
    with DeviceClient(method, live_server.url, TOKENS["dev-a"]) as client:
        result = client.adapt(_batch())
        assert result.source == "cloud" and result.attempts == 1 and result.error is None, result
        assert result.bytes_up > 0 and result.bytes_down > 0 and result.latency_ms > 0
        want = toy.ToyHyper().cloud_step(method.device_step(_batch()))
        torch.testing.assert_close(method.weight, want.weight)
        assert client.info()["method"] == "toy-hyper"
        assert client.latency_summary()["cloud"] == 1


def test_falls_back_to_last_good_when_the_server_dies_mid_run(live_server):
    method = toy.ToyHyper()
    client = DeviceClient(method, live_server.url, TOKENS["dev-a"], deadline_s=0.5, backoff_s=0.01)
    assert client.adapt(_batch(1)).source == "cloud"
    good = method.weight.clone()
    live_server.stop()
    result = client.adapt(_batch(2))
    assert result.source == "last_good" and result.attempts >= 1 and result.error, result
    assert result.latency_ms < 2000
    torch.testing.assert_close(method.weight, good)
    client.close()


def test_static_head_when_it_never_had_an_update():
    method = toy.ToyHyper()
    method.weight = torch.full_like(method.weight, 7.0)  # some stale adaptation
    dead = f"http://127.0.0.1:{free_port()}"
    with DeviceClient(method, dead, "whatever", deadline_s=0.3, backoff_s=0.01) as client:
        result = client.adapt(_batch())
    assert result.source == "static" and result.attempts >= 2
    torch.testing.assert_close(method.weight, method.static_weight)


@pytest.mark.parametrize("answer", [
    httpx.Response(200, content=b"garbage"),
    httpx.Response(503, json={"error": "busy", "detail": "try later"}),
])
def test_garbage_or_errors_are_retried_then_fall_back(answer):
    calls = []

    def handler(request):
        calls.append(request)
        return answer

    method = toy.ToyHyper()
    with DeviceClient(method, "http://cloud", "tok", transport=httpx.MockTransport(handler),
                      max_attempts=3, backoff_s=0.001) as client:
        result = client.adapt(_batch())
    assert result.source == "static" and len(calls) == 3 and result.attempts == 3
    assert calls[0].headers["authorization"] == "Bearer tok"


def test_an_update_for_another_device_is_refused():
    other = toy.ToyHyper().cloud_step(toy.make_upload("dev-b"))

    def handler(request):
        return httpx.Response(200, content=toy.wire.encode(other))

    method = toy.ToyHyper()
    with DeviceClient(method, "http://cloud", "tok", transport=httpx.MockTransport(handler), max_attempts=1) as c:
        result = c.adapt(_batch())
    assert result.source == "static" and "dev-b" in result.error


def test_refusals_are_not_retried_and_history_upload(live_server):
    method = toy.ToyHyper()
    with DeviceClient(method, live_server.url, TOKENS["dev-b"], backoff_s=0.01) as client:
        result = client.adapt(_batch())  # the toy device is dev-a: 403, no retries
        assert result.source == "static" and result.attempts == 1 and "403" in result.error
        with pytest.raises(DeviceError, match="403"):
            client.upload_history("dev-a", "toy", torch.randn(3, toy.C), torch.tensor([0, 1, -1]))
        receipt = client.upload_history("dev-b", "toy", torch.randn(3, toy.C), torch.tensor([0, 1, -1]))
        assert receipt["stored"] == 3


def test_the_result_names_the_quantisation_that_travelled_not_the_one_asked():
    # CD-CCA's DWC answers NF4 whatever the device asks; the result reports what came, not what was asked
    asked = []

    def handler(request):
        asked.append(request.url.params["quant"])
        return httpx.Response(200, content=toy.wire.encode(toy.ToyHyper().cloud_step(toy.make_upload("dev-a")), "nf4"))

    method = toy.ToyHyper()
    with DeviceClient(method, "http://cloud", "tok", transport=httpx.MockTransport(handler), max_attempts=1) as c:
        result = c.adapt(_batch())
    assert asked == ["fp32"] and result.source == "cloud" and result.quant == "nf4"
