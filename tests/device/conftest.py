"""Fixtures for the device client: the toy method (tests/toy_service.py) and a real uvicorn server
on loopback in a thread, which a test can stop to play a dying cloud."""

from __future__ import annotations

import pytest

import toy_service as toy  # tests/ is on pytest's pythonpath
from toy_service import TOKENS, LiveServer


@pytest.fixture
def live_server(tmp_path):
    from paramcast.cloud import Batching, TokenStore, create_app

    tokens = TokenStore()
    for dev, tok in TOKENS.items():
        tokens.add_token(dev, tok)
    app = create_app(toy.ToyHyper(), tokens=tokens, batching=Batching(max_batch=4, max_wait_ms=1),
                     store_path=tmp_path / "h.sqlite")
    server = LiveServer(app)
    yield server
    server.stop()
    app.state.close()
