"""Fault test on the real engine: kill -9 the PostgreSQL-backed service while devices post history;
after a restart on the same database every row it acknowledged (2xx) is there, intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import torch

from paramcast.bench.serve import _free_port
from paramcast.cloud import issue_token, load_history
from paramcast.wire.history import encode_history

DEVICES, ROWS = 8, 4


def _start(store: str, token_file, log) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "paramcast.cli.serve", "--plugin", "paramcast.bench.serve_plugin", "--method", "bench-hyper",
           "--method-arg", "num_answers=5", "--method-arg", "hidden=8", "--method-arg", "head_in=4",
           "--upload-shape", "1,192", "--token-file", str(token_file), "--store", store, "--port", str(port),
           "--history-posts-per-minute", "100000", "--threads", "1", "--log-level", "warning", "--no-docs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMCAST_")}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start in 90 s")


def test_kill_9_loses_no_acknowledged_history_row(tmp_path, pg_url):
    token_file = tmp_path / "tokens.json"
    tokens = [issue_token(token_file, f"bench-{i:03d}") for i in range(DEVICES)]
    g = torch.Generator().manual_seed(0)
    bodies = [encode_history(f"bench-{i:03d}", "bench", torch.randn(ROWS, 192, generator=g),
                             torch.randint(0, 5, (ROWS,), generator=g)) for i in range(DEVICES)]
    acked: list[int] = []  # row ids the service answered 200 for
    failed = []
    stop = threading.Event()
    with open(tmp_path / "server.log", "wb") as log:
        proc, url = _start(pg_url, token_file, log)

        def device(i: int) -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=5) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/v1/history", content=bodies[i])
                    except httpx.HTTPError as exc:
                        failed.append(type(exc).__name__)
                        time.sleep(0.01)
                        continue
                    if r.status_code == 200:
                        j = r.json()
                        assert j["stored"] == ROWS
                        acked.extend(range(j["first_id"], j["last_id"] + 1))
                    else:
                        failed.append(r.status_code)

        threads = [threading.Thread(target=device, args=(i,)) for i in range(DEVICES)]
        for t in threads:
            t.start()
        while len(acked) < 40 * ROWS and proc.poll() is None:  # under load: ~40 uploads acknowledged
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)  # the devices keep posting into the dead port
        stop.set()
        for t in threads:
            t.join()
        assert failed and all(isinstance(f, str) for f in failed), failed[:5]  # connection errors, never a 4xx/5xx

        proc, url = _start(pg_url, token_file, log)  # the same database: the schema is there already
        try:
            r = httpx.post(url + "/v1/history", content=bodies[0], headers={"Authorization": f"Bearer {tokens[0]}"})
            assert r.status_code == 200, r.text
        finally:
            proc.terminate()
            proc.wait(20)
    with psycopg.connect(pg_url) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM samples")}
    assert len(acked) >= 40 * ROWS and len(set(acked)) == len(acked)
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged rows lost"
    data = load_history(pg_url, num_labels=5)  # every row, checksum checked
    assert not data["skipped"] and len(data["labels"]) == len(stored)
