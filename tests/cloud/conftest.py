"""Fixtures for the cloud service: a toy hypernetwork method, tokens, an app and an ASGI client."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def load_toy():
    name = "paramcast_tests_toy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_toy.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = load_toy()


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
             store=True, method=None):
        app = create_app(method or toy.ToyHyper(), tokens=tokens[0], batching=batching, limits=limits,
                         store_path=tmp_path / "history.sqlite" if store else None)
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
