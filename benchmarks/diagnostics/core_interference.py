"""How much does work on one CPU slow pure Python on the other? The bound it puts on issue 18's 80 % target.

    python benchmarks/diagnostics/core_interference.py --out benchmarks/results/core_interference

``paramcast bench serve``'s static-body ceiling is the event loop alone on one CPU (the server's other
threads idle: 1.0 server cores). An adapted request runs the same event-loop work while the generator
and the encoder keep the other CPU busy. If the two CPUs are not independent (SMT siblings of one
physical core on the host, a shared frequency budget, shared caches), the event loop runs slower
whenever its neighbour works, and adapted throughput cannot reach the static ceiling even with free
generation. This measures that factor directly, with no server:

* the **probe** — ``paramcast.bench.serve.python_probe``, a fixed pure-Python loop (integer arithmetic,
  like the interpreter work of parsing, routing and checking a request), pinned to CPU 0, its best of
  ``--reps`` timings;
* the **neighbours** — a second process pinned to CPU 1 running, for the probe's whole duration,
  nothing (``alone``), a pure-Python spin (``python``), the served generator's memory-bound layer
  (``gemm``: ``linear`` 96 -> 145,500 at batch 8, one torch thread), or SHA-256 over a 582 KB answer
  (``sha256``, the wire checksum);
* arms alternate, ``--trials`` rounds; reported per neighbour: the median probe time and its ratio to
  ``alone`` (the slowdown the event loop suffers while that neighbour runs).

Linux only (``os.sched_setaffinity``); needs at least two CPUs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
from pathlib import Path

from paramcast.bench.report import markdown_table, write_result
from paramcast.bench.serve import probe_beside

NEIGHBOURS = ("alone", "python", "gemm", "sha256")


def neighbour(kind: str) -> None:
    """Run ``kind`` until killed (the parent kills it after the probe)."""
    if kind == "python":
        while True:
            pass
    if kind == "sha256":
        buf = os.urandom(582_504)
        while True:
            hashlib.sha256(buf).digest()
    if kind == "gemm":
        import torch

        torch.set_num_threads(1)
        x, w = torch.randn(8, 96), torch.randn(145_500, 96)
        while True:
            torch.nn.functional.linear(x, w)
    raise ValueError(kind)


def trial(kind: str, reps: int) -> float:
    cmd = None if kind == "alone" else [sys.executable, __file__, "--neighbour", kind]
    return probe_beside(cmd, reps, settle_s=1.5)  # 1.5 s: the neighbour has imported and runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--trials", type=int, default=3, help="rounds; each runs every neighbour once")
    ap.add_argument("--reps", type=int, default=5, help="probe timings per trial (the best is kept)")
    ap.add_argument("--neighbour", choices=NEIGHBOURS[1:], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.neighbour:
        os.sched_setaffinity(0, {1})
        neighbour(args.neighbour)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("core_interference needs at least two CPUs")
    os.sched_setaffinity(0, {0})
    rows = []
    for t in range(args.trials):
        for kind in NEIGHBOURS:
            rows.append({"trial": t, "neighbour": kind, "probe_s": round(trial(kind, args.reps), 4)})
            print(rows[-1], flush=True)
    med = {k: statistics.median(r["probe_s"] for r in rows if r["neighbour"] == k) for k in NEIGHBOURS}
    summary = [{"neighbour on CPU 1": k, "probe s (median)": med[k], "slowdown vs alone": round(med[k] / med["alone"], 3)}
               for k in NEIGHBOURS]
    result = {"trials": rows, "summary": summary}
    md = ("A pure-Python probe pinned to CPU 0 while a second process on CPU 1 runs nothing or one kind of "
          f"work; median of {args.trials} trials (each the best of {args.reps} probe timings).\n\n"
          + markdown_table(summary)
          + "\nA slowdown above 1 is what the event loop loses whenever the generator or encoder works on the "
            "other CPU: the static-body ceiling runs it alone.\n")
    if args.out:
        write_result(result, args.out, md)
    print(md)


if __name__ == "__main__":
    main()
