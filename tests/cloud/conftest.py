"""Fixtures for the cloud service: a toy hypernetwork method, tokens, an app and an ASGI client; a real
PostgreSQL server (one per session, tests/pg_server.py) and ``store_target``, a fresh empty history
store of each back end (SQLite file, PostgreSQL database) for the tests that take it."""

from __future__ import annotations

import os
import subprocess

import pytest

import pg_server
import toy_service as toy  # tests/ is on pytest's pythonpath


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server; skips (or, with PARAMCAST_REQUIRE_POSTGRES=1 as .ci/run sets, fails)
    where none can be started."""
    why = pg_server.unavailable()
    server = None
    if why is None:
        try:
            server = pg_server.PostgresServer()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            why = f"PostgreSQL did not start: {exc}"
    if why is not None:
        if os.environ.get("PARAMCAST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PARAMCAST_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres):
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """A fresh, empty history store: an SQLite path or a postgresql:// URL."""
    if request.param == "sqlite":
        return tmp_path / "history.sqlite"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance for the session (start-up takes seconds on 2 cores), its files in a temp dir.
    Its workers import tests/ (toy_service) and src/ through PYTHONPATH."""
    import tempfile
    from pathlib import Path

    rayserve = pytest.importorskip("paramcast.cloud.rayserve", reason="Ray Serve is not installed (paramcast[ray])")
    here = Path(__file__).resolve().parents[1]
    path = [str(here), str(here.parent / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    run_dir = tempfile.mkdtemp(prefix="paramcast-ray-")
    rayserve.start_ray(run_dir, num_cpus=2)
    yield rayserve
    rayserve.shutdown()
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def tokens():
    from paramcast.cloud import TokenStore

    store = TokenStore()
    issued = {"dev-a": "token-for-a-0123456789", "dev-b": "token-for-b-0123456789"}
    for dev, tok in issued.items():
        store.add_token(dev, tok)
    return store, issued


@pytest.fixture
def make_app(tokens, tmp_path):
    from paramcast.cloud import Batching, Limits, create_app

    apps = []

    def make(*, batching=Batching(max_batch=8, max_wait_ms=5.0), limits=Limits(max_upload_bytes=64 * 1024),
             store=True, method=None, **kw):
        """``store``: True (an SQLite file in tmp_path), False (no history), or a store path / URL."""
        kw.setdefault("tokens", tokens[0])
        path = tmp_path / "history.sqlite" if store is True else (store or None)
        app = create_app(method or toy.ToyHyper(), batching=batching, limits=limits, store_path=path, **kw)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def auth(tokens):
    return lambda dev="dev-a": {"Authorization": f"Bearer {tokens[1][dev]}"}
