"""Fixtures for the cloud service: a toy hypernetwork method, tokens, an app and an ASGI client."""

from __future__ import annotations

import pytest

import toy_service as toy  # tests/ is on pytest's pythonpath


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
        kw.setdefault("tokens", tokens[0])
        app = create_app(method or toy.ToyHyper(), batching=batching, limits=limits,
                         store_path=tmp_path / "history.sqlite" if store else None, **kw)
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
