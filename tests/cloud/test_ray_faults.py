"""Fault test on the real engine: kill -9 one of two Ray Serve replicas while 64 devices adapt. The
other replica keeps answering, Ray replaces the dead one, and the devices' retries hide it: 0 failed
predictions, and a device runs on its last good head only for the adaptations whose retries ran out."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time

import pytest
import torch

import toy_service as toy
from paramcast.cloud.spec import AppSpec
from paramcast.device import DeviceClient
from toy_service import free_port

DEVICES = 64


@pytest.mark.slow  # `make test-slow`: on a 2-core CI box 64 devices with a 1.5 s attempt timeout against two
# single-thread replicas did not all get a first answer within 180 s (fresh-clone CI of this stop)
def test_kill_9_one_replica_under_64_devices(ray_instance, tmp_path):
    rayserve = ray_instance
    tokens = {f"dev-{i:02d}": f"token-for-dev-{i:02d}-0123456789" for i in range(DEVICES)}
    (tmp_path / "tokens.json").write_text(json.dumps({"version": 1, "devices": {
        d: {"sha256": hashlib.sha256(t.encode()).hexdigest()} for d, t in tokens.items()}}))
    spec = AppSpec(method="toy-hyper", plugins=("toy_service",), threads=1,
                   app_kwargs={"tokens": str(tmp_path / "tokens.json"), "batching": {"max_batch": 16, "max_wait_ms": 2.0}})
    url = rayserve.deploy(spec, replicas=2, port=free_port())
    pids = rayserve.replica_pids()
    assert len(pids) == 2, pids
    results: dict[str, list] = {d: [] for d in tokens}
    predictions_failed = []
    stop = threading.Event()

    def device(dev: str) -> None:
        m = toy.ToyHyper()
        m.device_id = dev
        g = torch.Generator().manual_seed(int(dev[-2:]))
        client = DeviceClient(m, url, tokens[dev], deadline_s=3.0, attempt_timeout_s=1.5, max_attempts=6,
                              backoff_s=0.05)
        while not stop.is_set():
            x = torch.randn(4, toy.C, generator=g)
            res = client.adapt({"x": x})
            results[dev].append((time.monotonic(), res.source, res.attempts))
            out = m.predict({"x": x})
            if out.shape != (4, toy.V) or not torch.isfinite(out).all():
                predictions_failed.append(dev)
            time.sleep(0.02)

    threads = [threading.Thread(target=device, args=(d,), daemon=True) for d in tokens]
    try:
        for t in threads:
            t.start()
        ready_by = time.monotonic() + 180  # every device has its first cloud head (start-up can be slow on 2 cores)
        while not all(any(r[1] == "cloud" for r in list(rs)) for rs in results.values()):
            assert time.monotonic() < ready_by, "not every device got a first answer within 180 s"
            time.sleep(0.1)
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        time.sleep(5.0)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        from ray import serve

        serve.delete(rayserve.APP_NAME)
    after = [r for rs in results.values() for r in rs if r[0] > killed_at]
    assert not predictions_failed
    sources = {s: sum(1 for r in after if r[1] == s) for s in ("cloud", "last_good", "static")}
    assert sources["static"] == 0, sources  # after the kill no device is ever back on the untrained head
    assert sum(1 for r in after if r[1] == "cloud") > 2 * DEVICES  # the survivor (and the new replica) kept answering
    retried = sum(1 for r in after if r[2] > 1)
    print(f"\nafter the kill: {len(after)} adaptations, {retried} needed a retry, sources {sources}")
    assert sources["last_good"] <= 0.05 * len(after), sources  # fall-backs are rare: retries hide the kill
