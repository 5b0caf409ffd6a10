"""The history store (SQLite and PostgreSQL, the same tests on both) and the /v1/history route."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save

from paramcast.cloud import HistoryStore, StoreUnavailable, load_history, open_store
from paramcast.cloud.store import describe_store
from paramcast.wire.history import SCHEMA, decode_history, digest
from pg_server import raw_sql


def _batch(n=5, c=8, seed=0, question=True):
    g = torch.Generator().manual_seed(seed)
    t = {"features": torch.randn(n, c, generator=g), "labels": torch.randint(-1, 5, (n,), generator=g)}
    if question:
        t["question"] = torch.randint(0, 50, (n, 6), generator=g)
    return t


def _body(tensors, device_id="dev-a", task="toy", sha=None):
    meta = {"schema": SCHEMA, "device_id": device_id, "task": task, "sha256": sha or digest(tensors)}
    return save(tensors, metadata=meta)


def test_store_survives_restart_with_every_row_intact(store_target):
    a, b = _batch(5, seed=1), _batch(3, seed=2)
    with open_store(store_target) as store:
        assert store.add("dev-a", "toy", a) == [1, 2, 3, 4, 5]
        assert store.add("dev-b", "toy", b) == [6, 7, 8]
    if not isinstance(store_target, str):  # the SQLite file
        assert sqlite3.connect(store_target).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with open_store(store_target) as store:  # reopened: the schema is there already
        rows = list(store.iter_rows())
        assert len(store) == 8 and [r.id for r in rows] == list(range(1, 9))
        assert [r.device_id for r in rows] == ["dev-a"] * 5 + ["dev-b"] * 3
        assert [r.id for r in store.iter_rows(device_id="dev-b", chunk=2)] == [6, 7, 8]
        assert [r.id for r in store.iter_rows(task="other")] == []
    data = load_history(store_target)
    torch.testing.assert_close(data["features"], torch.cat([a["features"], b["features"]]), rtol=0, atol=0)
    assert torch.equal(data["labels"], torch.cat([a["labels"], b["labels"]]))
    assert torch.equal(data["question"], torch.cat([a["question"], b["question"]]))
    assert data["device_names"] == ["dev-a", "dev-b"] and data["device_index"].tolist() == [0] * 5 + [1] * 3


def test_corrupt_row_is_detected(store_target):
    with open_store(store_target) as store:
        store.add("dev-a", "toy", _batch(2))
    raw_sql(store_target, "UPDATE samples SET sha256 = 'x' WHERE id = 2")
    with open_store(store_target) as store, pytest.raises(ValueError, match="row 2 is corrupt"):
        list(store.iter_rows())
    bad = []
    with open_store(store_target) as store:
        assert [r.id for r in store.iter_rows(on_bad=lambda rid, why: bad.append((rid, why)))] == [1]
    assert bad == [(2, "corrupt blob")]


def test_postgres_store_says_unavailable_and_reconnects(postgres, pg_url):
    """A refused connection is StoreUnavailable (503 in the service), with the password masked; a
    connection lost after start-up is too, and the next call reconnects."""
    import psycopg

    dead = f"postgresql://paramcast:s3cret@127.0.0.1:{postgres.port + 1 if postgres.port < 65535 else 1}/x"
    with pytest.raises(StoreUnavailable, match=r"paramcast:\*\*\*@") as info:
        open_store(dead)
    assert "s3cret" not in str(info.value) and "s3cret" not in describe_store(dead)
    with open_store(pg_url) as store:
        store.add("dev-a", "toy", _batch(2))
        with psycopg.connect(postgres.url(), autocommit=True) as admin:  # kill the store's backend
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'paramcast'")
        with pytest.raises(StoreUnavailable, match="lost the history database"):
            store.add("dev-a", "toy", _batch(2))
        assert store.add("dev-a", "toy", _batch(3)) and len(store) == 5


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t | {"extra": torch.zeros(5)}, "unknown"),
    (lambda t: t | {"labels": t["labels"].float()}, "labels must be"),
    (lambda t: t | {"features": t["features"].double()}, "features must be"),
    (lambda t: t | {"labels": t["labels"][:3]}, "same number of rows"),
    (lambda t: t | {"features": t["features"].clone().fill_(float("nan"))}, "finite"),
    (lambda t: t | {"labels": t["labels"] - 5}, ">= -1"),
])
def test_decode_history_refuses_malformed(mutate, message):
    with pytest.raises(ValueError, match=message):
        decode_history(_body(mutate(_batch())))
    with pytest.raises(ValueError, match="checksum"):
        decode_history(_body(_batch(), sha="0" * 64))
    with pytest.raises(ValueError, match="header"):
        decode_history(b"\xff" * 16)


def test_history_route(make_app, auth, store_target):
    with TestClient(make_app(store=store_target), raise_server_exceptions=False) as c:
        r = c.post("/v1/history", content=_body(_batch(4)), headers=auth("dev-a"))
        assert r.status_code == 200 and r.json()["stored"] == 4, r.text
        r = c.post("/v1/history", content=_body(_batch(4), device_id="dev-a"), headers=auth("dev-b"))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        r = c.post("/v1/history", content=_body(_batch(4, c=9)), headers=auth("dev-a"))
        assert r.status_code == 400 and "(N, 8)" in r.json()["detail"]
        r = c.post("/v1/history", content=b"junk", headers=auth("dev-a"))
        assert r.status_code == 400 and json.loads(r.text)["error"] == "bad_history"
        assert c.post("/v1/history", content=_body(_batch(4))).status_code == 401
        if isinstance(store_target, str):  # the database goes away: 503 with Retry-After, not a 500
            c.app.state.store.close()
            c.app.state.store.url = c.app.state.store.url.rsplit("/", 1)[0] + "/no_such_db"
            r = c.post("/v1/history", content=_body(_batch(4)), headers=auth("dev-a"))
            assert r.status_code == 503 and r.json()["error"] == "history_unavailable" and r.headers["retry-after"]
    assert len(load_history(store_target)["labels"]) == 4


def test_store_files_are_created_0600(tmp_path):
    """Like the token file: what devices uploaded is readable by the service's user only (umask aside)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        with HistoryStore(tmp_path / "h.sqlite") as store:
            store.add("dev-a", "toy", _batch(2))
            files = [tmp_path / n for n in ("h.sqlite", "h.sqlite-wal", "h.sqlite-shm")]
            assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    finally:
        os.umask(old)
