"""/metrics through prometheus_client: each app counts apart; in multiprocess mode (the Ray engine's
replicas) every process that writes to the folder is summed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paramcast.cloud.metrics import MULTIPROC_ENV, Metrics

SRC = Path(__file__).resolve().parents[2] / "src"
COUNT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("metrics", sys.argv[2])  # the module alone: no torch to import
metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(metrics)
m = metrics.Metrics(("/v1/adapt",))
for _ in range(int(sys.argv[1])):
    m.observe_request("/v1/adapt", 200, 0.01, 10, 20)
m.observe_batch(3, 0.001)
print(m.render())
"""


def _process(n: int, multiproc_dir: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    if multiproc_dir is not None:
        env[MULTIPROC_ENV] = str(multiproc_dir)
    return subprocess.run([sys.executable, "-c", COUNT, str(n), str(SRC / "paramcast/cloud/metrics.py")], env=env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def test_apps_in_one_process_count_apart():
    a, b = Metrics(("/v1/adapt",)), Metrics(("/v1/adapt",))
    a.observe_request(a.route("/v1/adapt"), 200, 0.002, 5, 7)
    a.observe_request(a.route("/nope"), 404, 0.001, 0, 3)
    assert a.value("paramcast_requests_total", route="/v1/adapt", status="200") == 1
    assert a.value("paramcast_requests_total", route="other", status="404") == 1
    assert a.value("paramcast_response_bytes_total", route="/v1/adapt") == 7
    assert b.value("paramcast_requests_total", route="/v1/adapt", status="200") is None
    text = a.render()
    assert 'paramcast_requests_total{route="/v1/adapt",status="200"} 1.0' in text
    assert 'paramcast_request_seconds_bucket{le="0.0025",route="/v1/adapt"} 1.0' in text


def test_multiprocess_mode_sums_every_process(tmp_path):
    folder = tmp_path / "prom"
    _process(2, folder)
    text = _process(3, folder)  # a second process answers the scrape with both processes' counts
    assert 'paramcast_requests_total{route="/v1/adapt",status="200"} 5.0' in text
    assert 'paramcast_request_bytes_total{route="/v1/adapt"} 50.0' in text
    assert "paramcast_batch_size_count 2.0" in text
    alone = _process(1, None)  # without the folder a process counts only itself
    assert 'paramcast_requests_total{route="/v1/adapt",status="200"} 1.0' in alone
