"""History store on both back ends: bytes per stored row and uploads committed per second.

One writer (what one service replica does) posts ``--uploads`` uploads of ``--rows`` rows each
(features (192,), label, question (16,)) through ``store.add`` — one transaction each — into a fresh
SQLite file and a fresh PostgreSQL database (a throw-away server started by tests/pg_server.py, or
``--pg URL``). Reports rows/s, uploads/s and bytes on disk per row (SQLite: file + WAL after a
checkpoint; PostgreSQL: ``pg_total_relation_size('samples')``, table + TOAST + index), side by side.

    python benchmarks/scale/history_store.py --out benchmarks/results/history_store
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch

from paramcast.bench.report import markdown_table, write_result
from paramcast.cloud.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def _measure(target, uploads: int, rows: int, dim: int) -> dict:
    g = torch.Generator().manual_seed(0)
    batches = [{"features": torch.randn(rows, dim, generator=g), "labels": torch.randint(0, 1000, (rows,), generator=g),
                "question": torch.randint(0, 30000, (rows, 16), generator=g)} for _ in range(uploads)]
    with open_store(target) as store:
        t0 = time.perf_counter()
        for b in batches:
            store.add("bench-device", "videoqa", b)
        seconds = time.perf_counter() - t0
        n = len(store)
    return {"rows": n, "seconds": round(seconds, 3), "uploads_per_s": round(uploads / seconds, 1),
            "rows_per_s": round(n / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uploads", type=int, default=300)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--pg", default=None, help="a postgresql:// URL of an empty database (default: start one)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = {"config": {"uploads": args.uploads, "rows_per_upload": args.rows, "feature_dim": args.dim,
                         "question_len": 16},
              "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.sqlite"
        row = _measure(path, args.uploads, args.rows, args.dim)
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = sum(p.stat().st_size for p in Path(tmp).glob("h.sqlite*"))
        row["bytes_per_row"] = round(size / row["rows"], 1)
        result["backends"]["sqlite"] = row

        server = None
        url = args.pg
        if url is None:
            sys.path.insert(0, str(ROOT / "tests"))
            import pg_server

            server = pg_server.PostgresServer()
            url = server.new_database()
        try:
            row = _measure(url, args.uploads, args.rows, args.dim)
            import psycopg

            with psycopg.connect(url, autocommit=True) as db:
                db.execute("VACUUM ANALYZE samples")
                size = db.execute("SELECT pg_total_relation_size('samples')").fetchone()[0]
                blob = db.execute("SELECT avg(octet_length(tensors)) FROM samples").fetchone()[0]
            row["bytes_per_row"] = round(size / row["rows"], 1)
            result["blob_bytes_per_row"] = round(float(blob), 1)
            result["backends"]["postgresql"] = row
        finally:
            if server is not None:
                server.stop()
    print(json.dumps(result, indent=1))
    if args.out is not None:   # the JSON with the exact command and the machine, and a Markdown table
        write_result(result, args.out, markdown_table([{"backend": b, **r} for b, r in result["backends"].items()]))


if __name__ == "__main__":
    main()
