"""/openapi.json declares what the service really does, and the golden vectors get the answers
docs/wire.md promises when they are posted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import toy_service as toy

VECTORS = Path(__file__).parents[1] / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _error_schema_ok(doc: dict, response: dict) -> bool:
    ref = response["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return set(schema["required"]) == {"error", "detail"}


def test_openapi_declares_bearer_and_error_bodies(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's 422 is not what we answer
    declared = {"/v1/adapt": {400, 401, 403, 409, 413, 422, 500}, "/v1/history": {400, 401, 403, 404, 413, 500}}
    for path, statuses in declared.items():
        op = doc["paths"][path]["post"]
        assert op["security"] == [{"bearer": []}]
        assert {int(s) for s in op["responses"]} - {200} == statuses
        for status in statuses:
            assert _error_schema_ok(doc, op["responses"][str(status)]), (path, status)
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    for path in ("/v1/info", "/healthz", "/metrics"):
        assert "security" not in doc["paths"][path]["get"]


def test_every_declared_adapt_and_history_status_is_reachable(client, auth, make_app):
    """Each 4xx the document declares, provoked for real, with the {error, detail} body it declares."""
    doc = client.get("/openapi.json").json()
    good = toy.wire.encode(toy.make_upload("dev-a"))
    bad = (VECTORS / "bad-checksum.bin").read_bytes()

    def post(path, body, headers=None, c=client, **params):
        return c.post(path, content=body, headers=OCTET | (headers if headers is not None else auth()), params=params)

    answers = {
        ("/v1/adapt", 400): post("/v1/adapt", bad),
        ("/v1/adapt", 401): post("/v1/adapt", good, headers={}),
        ("/v1/adapt", 403): post("/v1/adapt", good, headers=auth("dev-b")),
        ("/v1/adapt", 409): post("/v1/adapt", toy.wire.encode(toy.make_upload(model_version="toy-0"))),
        ("/v1/adapt", 413): post("/v1/adapt", toy.wire.encode(toy.make_upload(features=torch.randn(4096, toy.C)))),
        ("/v1/adapt", 422): post("/v1/adapt", toy.wire.encode(toy.make_upload(features=torch.randn(2, toy.C)))),
        ("/v1/history", 400): post("/v1/history", (VECTORS / "history-bad-checksum.bin").read_bytes()),
        ("/v1/history", 401): post("/v1/history", b"x", headers={"Authorization": "Bearer nope"}),
        ("/v1/history", 403): post("/v1/history", (VECTORS / "history.bin").read_bytes(), headers=auth("dev-b")),
        ("/v1/history", 413): post("/v1/history", b"\0" * (17 << 20)),
    }
    with TestClient(make_app(store=False), raise_server_exceptions=False) as plain:
        answers[("/v1/history", 404)] = post("/v1/history", b"x", c=plain)
    declared = {(p, int(s)) for p in ("/v1/adapt", "/v1/history") for s in doc["paths"][p]["post"]["responses"]}
    assert set(answers) == declared - {(p, s) for p, s in declared if s in (200, 500)}  # every declared 4xx
    for (path, status), r in answers.items():
        assert r.status_code == status, (path, status, r.text)
        body = r.json()
        assert set(body) == {"error", "detail"} and body["detail"]
        assert body["error"] in doc["paths"][path]["post"]["responses"][str(status)]["description"], (path, body)


@pytest.mark.parametrize("vec", MANIFEST["malformed"], ids=lambda v: v["name"])
def test_malformed_vectors_get_the_documented_answer(client, auth, vec):
    path = "/v1/history" if vec["decoder"] == "history" else "/v1/adapt"
    r = client.post(path, content=(VECTORS / vec["file"]).read_bytes(), headers=OCTET | auth())
    assert r.status_code == vec["service"]["status"], r.text
    body = r.json()
    assert body["error"] == vec["service"]["error"]
    # the service decodes with expect=Upload: a malformed head may be refused for its kind first
    assert body["detail"] == vec["error"] or body["detail"].startswith("expected a Upload message"), body
