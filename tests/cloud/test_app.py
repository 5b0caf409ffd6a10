"""The service end to end in process: wire round trip, auth, limits, refusals as JSON 4xx."""

from __future__ import annotations

import struct

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

import toy_service as toy
from paramcast.types import HeadParams

wire = toy.wire


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _post(client, upload, headers, **params):
    return client.post("/v1/adapt", content=wire.encode(upload), headers=headers | {"Content-Type": "application/octet-stream"},
                       params=params)


def _is_json_error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    return body


def test_adapt_round_trip_equals_cloud_step(client, auth):
    upload = toy.make_upload("dev-a")
    r = _post(client, upload, auth("dev-a"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    update = wire.decode(r.content)
    assert isinstance(update, HeadParams) and update.device_id == "dev-a"
    want = toy.ToyHyper().cloud_step(upload)
    torch.testing.assert_close(update.weight, want.weight)
    torch.testing.assert_close(update.bias, want.bias)


@pytest.mark.parametrize("how", ["query", "header"])
def test_downlink_quant_is_chosen_by_the_device(client, auth, how):
    upload = toy.make_upload("dev-a")
    if how == "query":
        r = _post(client, upload, auth(), quant="fp16")
    else:
        r = _post(client, upload, auth() | {"X-Paramcast-Quant": "fp16"})
    assert r.status_code == 200 and r.headers["x-paramcast-quant"] == "fp16"
    assert wire.decode(r.content).quant == "fp16"
    _is_json_error(_post(client, upload, auth(), quant="fp64"), 400)


def test_auth_unknown_bad_and_impersonation(client, auth):
    upload = toy.make_upload("dev-a")
    assert _is_json_error(_post(client, upload, {}), 401)["error"] == "unauthenticated"
    _is_json_error(_post(client, upload, {"Authorization": "Bearer not-a-token"}), 401)
    _is_json_error(_post(client, upload, {"Authorization": "Basic abc"}), 401)
    body = _is_json_error(_post(client, upload, auth("dev-b")), 403)
    assert "dev-a" in body["detail"] and "dev-b" in body["detail"]


def test_body_too_large_is_413(client, auth):
    big = toy.make_upload("dev-a", features=torch.randn(4096, toy.C))  # > 64 KiB limit of the fixture
    _is_json_error(_post(client, big, auth()), 413)

    def chunks():  # no Content-Length: the streaming cap must catch it
        for _ in range(100):
            yield b"\0" * 4096

    r = client.post("/v1/adapt", content=chunks(), headers=auth())
    _is_json_error(r, 413)


def _with_value(upload_features_value: float) -> bytes:
    """An encoded upload whose features hold ``upload_features_value`` (NaN/Inf), made by editing a
    sentinel in the bytes if the encoder itself refuses non-finite values."""
    sentinel = 1234.5
    f = torch.full((1, toy.C), sentinel)
    try:
        return wire.encode(toy.make_upload("dev-a", features=f.fill_(upload_features_value)))
    except (ValueError, wire.WireError):
        data = wire.encode(toy.make_upload("dev-a", features=torch.full((1, toy.C), sentinel)))
        return data.replace(struct.pack("<f", sentinel), struct.pack("<f", upload_features_value))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_features_are_refused(client, auth, value):
    r = client.post("/v1/adapt", content=_with_value(value), headers=auth())
    assert 400 <= r.status_code < 500
    _is_json_error(r, r.status_code)


def test_tampered_payload_fails_the_checksum(client, auth):
    data = wire.encode(toy.make_upload("dev-a", features=torch.full((1, toy.C), 1234.5)))
    tampered = data.replace(struct.pack("<f", 1234.5), struct.pack("<f", 1234.25), 1)
    assert tampered != data
    body = _is_json_error(client.post("/v1/adapt", content=tampered, headers=auth()), 400)
    assert body["error"] == "bad_payload"


def test_wrong_method_version_and_shape(client, auth):
    _is_json_error(_post(client, toy.make_upload(method="cdc-mmpg"), auth()), 400)
    _is_json_error(_post(client, toy.make_upload(model_version="toy-0"), auth()), 409)
    _is_json_error(_post(client, toy.make_upload(features=torch.randn(2, toy.C)), auth()), 422)
    _is_json_error(_post(client, toy.make_upload(features=torch.randn(1, toy.C + 1)), auth()), 422)


def test_info_health_metrics_docs_and_404(client, auth):
    info = client.get("/v1/info").json()
    assert info["method"] == "toy-hyper" and info["model_version"] == "toy-1"
    assert info["update"] == {"type": "HeadParams", "weight": [toy.V, toy.H], "bias": [toy.V]}
    assert "nf4" in info["quants"] and info["upload"]["features"] == [1, toy.C]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").status_code == 200
    _is_json_error(client.get("/nope"), 404)
    _is_json_error(client.get("/v1/adapt"), 405)
    _post(client, toy.make_upload(), auth())
    _post(client, toy.make_upload(), {})
    text = client.get("/metrics").text
    assert 'paramcast_requests_total{route="/v1/adapt",status="200"} 1' in text
    assert 'paramcast_requests_total{route="/v1/adapt",status="401"} 1' in text
    assert 'paramcast_requests_total{route="other",status="404"} 1' in text
    assert "paramcast_batch_size_count 1" in text
    assert 'paramcast_response_bytes_total{route="/v1/adapt"}' in text


def test_async_asgi_transport_works(app, auth):
    import asyncio

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as c:
            return await c.post("/v1/adapt", content=wire.encode(toy.make_upload()), headers=auth())

    assert asyncio.run(go()).status_code == 200


def test_static_answer_keeps_the_route_stack(make_app, auth):
    """The benchmark's HTTP ceiling: auth, decoding and checks as always, then the fixed bytes."""
    static = b"precomputed answer bytes"
    with TestClient(make_app(static_answer=static), raise_server_exceptions=False) as c:
        r = _post(c, toy.make_upload("dev-a"), auth("dev-a"))
        assert r.status_code == 200 and r.content == static
        _is_json_error(_post(c, toy.make_upload("dev-a"), auth("dev-b")), 403)
        _is_json_error(_post(c, toy.make_upload("dev-a"), {}), 401)
        _is_json_error(c.post("/v1/adapt", content=b"garbage", headers=auth("dev-a")), 400)
