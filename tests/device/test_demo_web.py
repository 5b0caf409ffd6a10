"""`paramcast demo-web` in headless Chromium: the page loads the ONNX device model (onnxruntime-web),
adapts once through the real service and shows the adapted answer — the one PyTorch gives.

Skipped, with the reason, without ``chromium`` (Debian's package) or ``node``/``npm`` (the page's
bundle is built by ``make node-client``). Chromium is driven over the DevTools protocol with the
``websockets`` package uvicorn already brings; nothing leaves loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from toy_service import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None or shutil.which("npm") is None,
                                reason="chromium (apt-get install chromium) or node/npm not installed: the web demo is not tested")


class DevTools:
    """The smallest Chrome DevTools protocol client: one page target, synchronous calls."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_text(self, element: str, want: set[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.eval(f"document.getElementById('{element}').textContent")
            if text in want or (text or "").startswith("error") or time.monotonic() > deadline:
                return text
            time.sleep(0.1)


@pytest.fixture
def chromium(tmp_path):
    port = free_port()
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
                             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,620", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json() if t["type"] == "page"]
                if pages:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_page_adapts_and_shows_the_pytorch_answer(exported_device, serve_app, chromium, tmp_path):
    import torch

    from paramcast import wire
    from paramcast.demo_web import create_demo_app

    r = subprocess.run(["make", "-s", "node-client"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"make node-client failed:\n{r.stdout}\n{r.stderr}"
    m, batch, vocab = exported_device["method"], exported_device["batch"], exported_device["vocab"]
    words = lambda q: " ".join(vocab.words[int(w)] for w in q if int(w) > 3)  # noqa: E731
    n = 3
    app = create_demo_app(m, exported_device["dir"], exported_device["frames"][:n], exported_device["question"][:n],
                          [words(q) for q in exported_device["question"][:n]],
                          [vocab.answers[int(a)] if a >= 0 else "(other)" for a in batch.answer[:n]],
                          vocab.answers, exported_device["device_id"])
    server = serve_app(app)
    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=server.url + "/")
    assert chromium.wait_text("status", {"ready"}) == "ready"
    chromium.eval("document.getElementById('quant').value = 'int8'; document.getElementById('adapt').click()")
    assert chromium.wait_text("status", {"adapted"}) == "adapted"
    shown = {k: chromium.eval(f"document.getElementById('{k}').textContent")
             for k in ("static-answer", "adapted-answer", "adapted-index", "source", "bytes-up", "bytes-down", "latency-ms")}

    first = batch.subset(torch.arange(1))
    m.reset()
    static_answer = vocab.answers[int(m.predict(first).argmax(1))]
    head = wire.decode(wire.encode(m.cloud_step(m.device_step(first)), "int8"))  # what travels as int8
    m.apply(head)
    want = int(m.predict(first).argmax(1))
    m.reset()
    assert shown["source"] == "cloud", shown
    assert shown["static-answer"] == static_answer
    assert int(shown["adapted-index"]) == want and shown["adapted-answer"] == vocab.answers[want]
    assert int(shown["bytes-down"]) == len(wire.encode(head, "int8")) and int(shown["bytes-up"]) > 0
    assert float(shown["latency-ms"]) > 0

    shot = chromium.call("Page.captureScreenshot", format="png")["data"]
    import base64

    png = base64.b64decode(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("PARAMCAST_DEMO_SCREENSHOT"):  # docs/demo_web.png is made this way
        Path(os.environ["PARAMCAST_DEMO_SCREENSHOT"]).write_bytes(png)
