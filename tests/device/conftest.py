"""Fixtures for the device client: the toy method (tests/cloud/_toy.py) and a real uvicorn server
on loopback in a thread, which a test can stop to play a dying cloud."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn


def _load_toy():
    name = "paramcast_tests_toy"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "cloud" / "_toy.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = _load_toy()
TOKENS = {"dev-a": "token-for-a-0123456789", "dev-b": "token-for-b-0123456789"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
