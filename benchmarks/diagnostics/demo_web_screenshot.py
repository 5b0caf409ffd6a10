"""Screenshot of `paramcast demo-web` after one int8 adaptation (docs/demo_web.png).

    paramcast train --method cdc-mmpg --preset tiny --out runs/train-tiny
    python benchmarks/diagnostics/demo_web_screenshot.py runs/train-tiny/checkpoint.safetensors --preset tiny \\
        --out docs/demo_web.png

Starts the demo and headless Chromium (tests/device/test_demo_web.py's DevTools client), adapts on each
of the first 8 clips and photographs the first one whose adapted answer differs from the static one.
"""

import argparse
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "device")]
from test_demo_web import CHROMIUM, DevTools  # noqa: E402

from toy_service import free_port  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkpoint")
parser.add_argument("--preset", default="tiny")
parser.add_argument("--out", type=Path, default=Path("docs/demo_web.png"))
args = parser.parse_args()
port, dport = free_port(), free_port()
env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
server = subprocess.Popen([sys.executable, "-m", "paramcast", "demo-web", "--checkpoint", args.checkpoint, "--preset",
                           args.preset, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={dport}",
                            f"--user-data-dir={ROOT / 'runs' / 'chromium-profile'}", "--window-size=900,560", "about:blank"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(900):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    page = next(t for t in httpx.get(f"http://127.0.0.1:{dport}/json/list").json() if t["type"] == "page")
    tools = DevTools(page["webSocketDebuggerUrl"])
    tools.call("Page.enable")
    tools.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
    assert tools.wait_text("status", {"ready"}) == "ready"

    def adapt(clip: int) -> dict:
        tools.eval(f"document.getElementById('clip').value = '{clip}'; document.getElementById('clip').onchange(); "
                   "document.getElementById('quant').value = 'int8'; document.getElementById('adapt').click()")
        tools.wait_text("status", {"adapted"})
        return {k: tools.eval(f"document.getElementById('{k}').textContent") for k in ("static-answer", "adapted-answer")}

    pick = next((c for c in range(8) if len(set(adapt(c).values())) == 2), 0)
    print("clip", pick, adapt(pick))
    time.sleep(0.6)  # a few frames of the clip
    args.out.write_bytes(base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"]))
    print("wrote", args.out)
finally:
    browser.terminate()
    server.terminate()
