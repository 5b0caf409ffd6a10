"""CPU and page faults per answered request of the real app, in process: serve_dtype bf16 vs int8,
and int8 with glibc's malloc thresholds fixed (:func:`tune_malloc`, a candidate; not kept).

    python benchmarks/diagnostics/serve_cpu.py --out benchmarks/results/serve_cpu

Each trial is a fresh process (glibc's thresholds are per process) that builds the app
(``create_app``, CDC-MMPG at V = 1500, ``DynamicBatcher`` max batch 32, max wait 2 ms) and drives
``/v1/adapt`` through ``httpx.ASGITransport`` (no sockets) with ``--devices`` concurrent closed-loop
devices for ``--requests`` answers after a warm-up; the arms alternate, ``--trials`` rounds.
Reported per answered request: CPU ms of the whole process (``time.process_time``: every thread,
the in-process client included — the same in every arm, so differences are the server's) and minor
page faults. CPU time, not wall time: the machine is shared; ratios between arms are what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from paramcast.bench.report import markdown_table, write_result


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> None:
    """glibc: fix the mmap threshold at its 32 MB ceiling and trim the heap only above 1 GB, so freed
    generator outputs (18.6 MB at batch 32) and answers (582 KB) are reused instead of handed back
    to the system and faulted in again (what ``benchmarks/results/serve_int8*`` shows for the layer alone)."""
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(-3, mmap_threshold) and libc.mallopt(-1, trim_threshold)):  # M_MMAP_ / M_TRIM_THRESHOLD
        raise RuntimeError("mallopt refused")


def trial(tuned: bool, devices: int, requests: int, serve_dtype: str) -> dict:
    if tuned:
        tune_malloc()
    import httpx
    import torch

    from paramcast import catalog, wire
    from paramcast.cloud import Batching, TokenStore, create_app
    from paramcast.types import Upload

    m = catalog.create("cdc-mmpg", num_answers=1500, serve_dtype=serve_dtype)
    tokens = TokenStore()
    g = torch.Generator().manual_seed(0)
    bodies = []
    for i in range(devices):
        tokens.add_token(f"d{i}", f"token-{i:04d}-0123456789")
        bodies.append(wire.encode(Upload(device_id=f"d{i}", method=m.name, task=m.task, model_version=m.model_version,
                                         features=torch.randn(1, 192, generator=g))))
    app = create_app(m, tokens=tokens, batching=Batching(max_batch=32, max_wait_ms=2.0))
    counts = {"answers": 0, "bytes": 0}

    async def device(client, i: int, n: int) -> None:
        headers = {"Authorization": f"Bearer token-{i:04d}-0123456789", "Content-Type": "application/octet-stream"}
        for _ in range(n):
            r = await client.post("/v1/adapt", content=bodies[i], headers=headers)
            assert r.status_code == 200, r.text
            counts["answers"] += 1
            counts["bytes"] += len(r.content)

    async def run(n_each: int) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await asyncio.gather(*(device(client, i, n_each) for i in range(devices)))

    asyncio.run(run(2))  # warm-up: serving copies made, pools grown
    f0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    before = dict(counts)
    asyncio.run(run(max(1, requests // devices)))
    n = counts["answers"] - before["answers"]
    out = {"serve_dtype": serve_dtype, "tuned_malloc": tuned, "answers": n, "faults_per_answer": round((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n, 1),
           "cpu_ms_per_answer": round((time.process_time() - c0) * 1e3 / n, 3),
           "bytes_per_answer": (counts["bytes"] - before["bytes"]) // n}
    app.state.close()
    return out


ARMS = {"bf16": ("bf16", False), "int8": ("int8", False), "int8+malloc": ("int8", True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--trials", type=int, default=3, help="rounds; each runs every arm once")
    ap.add_argument("--devices", type=int, default=32)
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--trial", choices=list(ARMS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trial:
        dtype, tuned = ARMS[args.trial]
        print(json.dumps({"arm": args.trial, **trial(tuned, args.devices, args.requests, dtype)}))
        return
    rows = []
    for _ in range(args.trials):
        for arm in ARMS:
            cmd = [sys.executable, __file__, "--trial", arm, "--devices", str(args.devices), "--requests",
                   str(args.requests)]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            print(rows[-1], flush=True)
    summary = {arm: {k: statistics.median(r[k] for r in rows if r["arm"] == arm)
                     for k in ("cpu_ms_per_answer", "faults_per_answer")} for arm in ARMS}
    ratios = {"bf16_over_int8": round(summary["bf16"]["cpu_ms_per_answer"] / summary["int8"]["cpu_ms_per_answer"], 3),
              "int8_over_int8_malloc": round(summary["int8"]["cpu_ms_per_answer"]
                                             / summary["int8+malloc"]["cpu_ms_per_answer"], 3)}
    result = {"devices": args.devices, "requests": args.requests, "trials": rows, "summary": summary, "ratios": ratios}
    md = (f"In-process service (ASGI, no sockets), CDC-MMPG V = 1500, {args.devices} closed-loop devices, "
          f"{args.requests} answers per trial; medians of {args.trials} trials per arm; CPU of the whole process.\n\n"
          + markdown_table([{"arm": arm, **summary[arm]} for arm in ARMS])
          + f"\nCPU per answer, bf16 / int8: **{ratios['bf16_over_int8']}x**; int8 / int8 with fixed malloc "
            f"thresholds: **{ratios['int8_over_int8_malloc']}x**.\n")
    if args.out:
        write_result(result, args.out, md)
    print(md)


if __name__ == "__main__":
    main()
