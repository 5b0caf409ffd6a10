"""How much slower is the served generator's batch call beside a thread that runs Python? (issue 18)

    python benchmarks/diagnostics/gil_convoy.py --out benchmarks/results/gil_convoy

In the service the generator runs on the batcher's thread while the event loop's thread parses, decodes
and checks requests in Python. Every torch op releases the GIL around its kernel and must take it back
afterwards; while another thread is running Python, taking it back waits until that thread lets go — at
the latest after ``sys.getswitchinterval()`` (5 ms by default). A generator call made of many small ops
then pays up to one switch interval per op. ``bench serve`` sees this as a generator call of 16-25 ms at
batch 8 in the server against 3-5 ms alone (its ``generate`` column). This measures it with no server:
``cloud_step_batch`` of the served CDC-MMPG (V = 1500, ``--serve-dtype``) at ``--batch``, timed alone and
while one other thread spins in pure Python (the worst case of a busy event loop), at each
``--switch-interval``; arms alternate over ``--trials`` rounds, the median per arm is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from paramcast.bench.report import markdown_table, write_result
from paramcast.bench.serve import _create
from paramcast.types import Upload


def _call_ms(method, uploads, reps: int) -> float:
    with torch.inference_mode():
        method.cloud_step_batch(uploads)
        t0 = time.perf_counter()
        for _ in range(reps):
            method.cloud_step_batch(uploads)
    return (time.perf_counter() - t0) / reps * 1e3


def _beside_python(fn):
    stop = threading.Event()

    def spin() -> None:  # pure Python, holding the GIL except when the interpreter is asked to switch
        while not stop.is_set():
            s = 0
            for i in range(10_000):
                s += i

    th = threading.Thread(target=spin, daemon=True)
    th.start()
    try:
        time.sleep(0.05)
        return fn()
    finally:
        stop.set()
        th.join()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve-dtype", default="int8", choices=["fp32", "bf16", "int8"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--switch-interval", type=float, nargs="+", default=[0.005, 0.0005, 0.0001])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10, help="calls per timing")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    method = _create("cdc-mmpg", num_answers=1500, serve_dtype=args.serve_dtype)
    g = torch.Generator().manual_seed(0)
    uploads = [Upload(device_id=f"d{i:03d}", method=method.name, task=method.task or "",
                      model_version=method.model_version or "", features=torch.randn(1, 192, generator=g))
               for i in range(args.batch)]
    saved = sys.getswitchinterval()
    times: dict[tuple[float, str], list[float]] = {}
    try:
        for _ in range(args.trials):
            for si in args.switch_interval:
                sys.setswitchinterval(si)
                times.setdefault((si, "alone"), []).append(_call_ms(method, uploads, args.reps))
                times.setdefault((si, "beside a Python thread"), []).append(
                    _beside_python(lambda: _call_ms(method, uploads, args.reps)))
    finally:
        sys.setswitchinterval(saved)
    rows = []
    for si in args.switch_interval:
        alone = statistics.median(times[(si, "alone")])
        busy = statistics.median(times[(si, "beside a Python thread")])
        rows.append({"switch_interval_ms": si * 1e3, "alone_ms": round(alone, 2), "beside_python_ms": round(busy, 2),
                     "slowdown": round(busy / alone, 1)})
    result = {"serve_dtype": args.serve_dtype, "batch": args.batch, "trials": args.trials, "reps": args.reps,
              "torch_threads": torch.get_num_threads(), "rows": rows,
              "raw_ms": {f"{si}/{arm}": [round(t, 3) for t in ts] for (si, arm), ts in times.items()}}
    text = (f"`cloud_step_batch` of CDC-MMPG (V = 1500, serve_dtype {args.serve_dtype}) at batch {args.batch}, median ms "
            f"over {args.trials} alternating trials of {args.reps} calls, {result['torch_threads']} torch threads:\n\n"
            + markdown_table(rows, ["switch_interval_ms", "alone_ms", "beside_python_ms", "slowdown"]))
    print(text)
    if args.out is not None:
        write_result(result, args.out, text)
    return result


if __name__ == "__main__":
    main()
