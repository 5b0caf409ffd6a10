"""The service over real HTTP on both engines, uvicorn and Ray Serve, built from one AppSpec: the same
answers (routes, refusals as JSON 4xx, auth, metrics) and the same 0 x 5xx under the fuzz."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from test_fuzz import bodies, headers, queries  # the fuzz strategies, sent over a socket here

import toy_service as toy
from paramcast.cloud.spec import AppSpec, build_app
from paramcast.wire.history import encode_history
from toy_service import TOKENS, LiveServer, free_port


def _spec(tmp) -> AppSpec:
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({"version": 1, "devices": {
        dev: {"sha256": hashlib.sha256(tok.encode()).hexdigest()} for dev, tok in TOKENS.items()}}))
    return AppSpec(method="toy-hyper", plugins=("toy_service",), threads=1, app_kwargs={
        "tokens": str(tokens), "store_path": str(tmp / "h.sqlite"),
        "batching": {"max_batch": 4, "max_wait_ms": 1.0},
        "limits": {"max_upload_bytes": 4096, "history_posts_per_minute": 10**6, "history_bytes_per_hour": 2**40}})


@pytest.fixture(scope="module", params=["uvicorn", "ray"])
def engine(request, tmp_path_factory):
    spec = _spec(tmp_path_factory.mktemp(request.param))
    if request.param == "uvicorn":
        app = build_app(spec)
        server = LiveServer(app)
        yield server.url
        server.stop()
        app.state.close()
        return
    rayserve = request.getfixturevalue("ray_instance")
    yield rayserve.deploy(spec, replicas=1, port=free_port())  # one replica: /metrics counts are exact
    from ray import serve

    serve.delete(rayserve.APP_NAME)


def _auth(dev="dev-a"):
    return {"Authorization": f"Bearer {TOKENS[dev]}"}


def _counts(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("paramcast_requests_total{"):
            labels, value = line[len("paramcast_requests_total{"):].split("} ")
            kv = dict(part.split("=") for part in labels.split(","))
            out[(kv["route"].strip('"'), kv["status"].strip('"'))] = float(value)
    return out


CASES = [  # (route, body, headers, params, status, error)
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a")), _auth(), {"quant": "fp16"}, 200, None),
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a")), {}, {}, 401, "unauthenticated"),
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a")), _auth("dev-b"), {}, 403, "forbidden"),
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a")), _auth(), {"quant": "nf9"}, 400, "bad_quant"),
    ("/v1/adapt", b"junk", _auth(), {}, 400, "bad_payload"),
    ("/v1/adapt", b"x" * 5000, _auth(), {}, 413, "body_too_large"),
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a", model_version="toy-0")), _auth(), {}, 409,
     "model_version_mismatch"),
    ("/v1/adapt", toy.wire.encode(toy.make_upload("dev-a", features=torch.randn(1, 3))), _auth(), {}, 422, "bad_shape"),
    ("/v1/history", encode_history("dev-a", "toy", torch.randn(3, toy.C), torch.tensor([0, 1, 2])), _auth(), {},
     200, None),
    ("/v1/history", encode_history("dev-a", "toy", torch.randn(1, toy.C), torch.tensor([99])), _auth(), {}, 422,
     "label_out_of_range"),
]


def test_routes_refusals_auth_and_metrics(engine):
    with httpx.Client(base_url=engine, timeout=30) as c:
        before = _counts(c.get("/metrics").text)
        for route, body, hdrs, params, status, error in CASES:
            r = c.post(route, content=body, headers=hdrs, params=params)
            assert r.status_code == status, (route, r.text[:300])
            if error:
                assert r.json()["error"] == error and r.json()["detail"]
        ok = c.post("/v1/adapt", content=CASES[0][1], headers=_auth())
        head = toy.wire.decode(ok.content)
        want = toy.ToyHyper().cloud_step(toy.make_upload("dev-a", features=toy.wire.decode(CASES[0][1]).features))
        torch.testing.assert_close(head.weight, want.weight)  # the same generator, seed 0, on both engines
        assert c.get("/healthz").json() == {"status": "ok"}
        info = c.get("/v1/info").json()
        assert info["method"] == "toy-hyper" and info["history"] and info["limits"]["max_upload_bytes"] == 4096
        assert c.get("/v1/nothing").json()["error"] == "not_found" and c.get("/docs").status_code == 200
        after = _counts(c.get("/metrics").text)
    sent: dict[tuple[str, str], int] = {("/v1/adapt", "200"): 1}
    for route, _, _, _, status, _ in CASES:
        sent[(route, str(status))] = sent.get((route, str(status)), 0) + 1
    for key, n in sent.items():
        assert after.get(key, 0) - before.get(key, 0) == n, (key, before, after)


_statuses: dict[str, set[int]] = {}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=bodies, hdrs=headers, params=queries)
def test_fuzz_over_http_never_answers_5xx(engine, body, hdrs, params):
    hdrs = {k: v.strip() for k, v in hdrs.items()}  # h11 (the client) refuses to send edge whitespace in a value
    r = httpx.post(engine + "/v1/adapt", content=body, headers=hdrs, params=params, timeout=30)
    _statuses.setdefault(engine, set()).add(r.status_code)
    assert r.status_code < 500, r.text[:300]
    if r.status_code != 200:
        assert set(r.json()) == {"error", "detail"}


def test_ray_replicas_answer_metrics_for_the_whole_deployment(engine, request, tmp_path):
    """prometheus_client multiprocess mode: both replicas write to one folder, so a scrape answered by
    either one reports every request of the deployment (tests/cloud/test_metrics.py: the sum itself).
    Redeploys the module's Ray app with two replicas on the proxy's port (Ray Serve keeps its first
    port); the engine fixture deletes it afterwards."""
    if request.node.callspec.params["engine"] != "ray":
        pytest.skip("Ray Serve only: the uvicorn engine is one process")
    rayserve = request.getfixturevalue("ray_instance")
    url = rayserve.deploy(_spec(tmp_path), replicas=2, port=int(engine.rsplit(":", 1)[1]),
                          metrics_dir=tmp_path / "prom")
    with httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(20):
            assert c.get("/healthz").status_code == 200
        totals = [_counts(c.get("/metrics").text).get(("/healthz", "200")) for _ in range(6)]
    writers = {int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "prom").glob("*.db")}
    assert len(writers) == 2 and writers <= set(rayserve.replica_pids()), writers  # both replicas write there
    assert totals == [20.0] * 6, totals
