"""The TypeScript client (clients/node) on the golden vectors, and end to end against `paramcast serve`:
its predictions equal the Python device client's for every downlink quantisation.

Skipped, with the reason, where ``node`` / ``npm`` are not installed (CI installs Node 20). The npm
dependencies come from clients/node/package-lock.json through ``make node-client``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from toy_service import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "clients" / "node"
QUANTS = ("fp32", "fp16", "int8", "nf4")

pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="node and npm (Node >= 20) are not installed: the TypeScript client is not tested")


@pytest.fixture(scope="module")
def node_client():
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"node {version} is older than 20")
    r = subprocess.run(["make", "-s", "node-client"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"make node-client failed:\n{r.stdout}\n{r.stderr}"
    return NODE_DIR


def test_node_client_typechecks_and_passes_its_vector_tests(node_client):
    for script in ("typecheck", "test"):
        r = subprocess.run(["npm", "run", "-s", script], cwd=node_client, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"npm run {script}:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    assert "# fail 0" in r.stdout and "# pass " in r.stdout


@pytest.fixture
def served(exported_device, tmp_path):
    """`paramcast serve` of the fixture's method, as a subprocess on a free loopback port."""
    from paramcast.cloud.auth import issue_token

    ckpt = exported_device["method"].save_checkpoint(tmp_path / "checkpoint.safetensors")
    token = issue_token(tmp_path / "tokens.json", exported_device["device_id"])
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "paramcast", "serve", "--checkpoint", str(ckpt), "--token-file",
                             str(tmp_path / "tokens.json"), "--port", str(port), "--max-batch", "1", "--log-level",
                             "warning", "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"paramcast serve did not start:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.1)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)


def test_node_client_end_to_end_equals_python_client(node_client, exported_device, served, tmp_path):
    from safetensors.torch import save_file

    from paramcast.device import DeviceClient

    url, token = served
    dev, method, batch = exported_device["device_id"], exported_device["method"], exported_device["batch"]
    samples = tmp_path / "samples.safetensors"
    save_file({"frames": exported_device["frames"].contiguous(), "question": exported_device["question"].contiguous()},
              str(samples))
    out = tmp_path / "node.json"
    r = subprocess.run(["node", "--import", "tsx", "src/cli.ts", "--model", str(exported_device["dir"]), "--url", url,
                        "--token", token, "--device-id", dev, "--samples", str(samples), "--batch", "5",
                        "--quant", ",".join(QUANTS), "--out", str(out),
                        # the Python client's budget below: the first answer of a cold server on a busy CI
                        # machine took > 2 x 1 s (the Node defaults) and fell back to static
                        "--deadline-ms", "10000", "--attempt-timeout-ms", "10000"],
                       cwd=node_client, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    node = json.loads(out.read_text())

    per_quant = {}
    for quant in QUANTS:
        method.reset()
        logits, downs = [], []
        with DeviceClient(method, url, token, quant=quant, deadline_s=10, attempt_timeout_s=10) as client:
            for start in range(0, len(batch), 5):
                sub = batch.subset(torch.arange(start, min(start + 5, len(batch))))
                result = client.adapt(sub)
                assert result.source == "cloud", result
                downs.append(result.bytes_down)
                logits.append(method.predict(sub).numpy())
        want = np.concatenate(logits)                                               # (20, V)
        got = np.array(node[quant]["logits"], dtype=np.float32)
        assert [res["source"] for res in node[quant]["results"]] == ["cloud"] * 4, node[quant]["results"]
        assert [res["bytesDown"] for res in node[quant]["results"]] == downs        # the same answers' sizes
        assert got.shape == want.shape == (20, method.num_answers)
        assert node[quant]["pred"] == want.argmax(1).tolist(), quant                 # top-1 identical
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=0, err_msg=quant)
        per_quant[quant] = want
        print(f"{quant}: max |node - python| = {np.abs(got - want).max():.2e}, bytes down {downs}")
    # the downlink quantisation really changed what was installed (so the comparison covers each layout)
    assert np.abs(per_quant["nf4"] - per_quant["fp32"]).max() > 1e-3
