"""Fixtures for the device client: the toy method (tests/toy_service.py) and a real uvicorn server
on loopback in a thread, which a test can stop to play a dying cloud."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

import toy_service as toy  # tests/ is on pytest's pythonpath
from toy_service import TOKENS, free_port  # noqa: E402


class LiveServer:
    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


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
