"""Capacity on paper from measured inputs: writes the generated section of docs/scale.md.

Inputs (committed JSON): ``benchmarks/results/serve_engines/serve.json`` (``paramcast bench serve
--engines ...``: per-replica adaptations/s, bytes per adaptation) and
``benchmarks/results/history_store.json`` (bytes per history row, uploads/s per writer). The fleet
figures (adaptation rate, history rows per device per day, replicas, NIC, utilisation) are
arguments; the formulas are in docs/scale.md, above the generated block.

    python benchmarks/scale/capacity.py --write docs/scale.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- capacity:begin (benchmarks/scale/capacity.py) -->", "<!-- capacity:end -->"


def section(serve: dict, hist: dict, *, per_hour: float, rows_per_day: float, replicas: int, nic_gbit: float,
            util: float) -> str:
    rows = serve["modes"]
    c = serve["config"]
    lines = [BEGIN, "",
             f"Measured on this machine ({c['cpus']} CPUs), `bench-hyper` V = {c['num_answers']} "
             f"(192 -> 256 -> {c['num_answers']} x 97), {c['devices']} devices, {c['seconds']} s per row, fp32 downlink "
             "(`benchmarks/results/serve_engines/serve.json`):", "",
             "| engine / mode | adaptations/s T | p50 ms | p99 ms | mean batch | errors | bytes up / adaptation | bytes down / adaptation |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        up = round(r["bytes_up"] / max(r["requests_ok"] + r["errors"], 1))
        lines.append(f"| {name} | {r['req_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} | "
                     f"{r['errors']} | {up} | {r['down_bytes_per_answer']} |")
    for engine, ratio in serve.get("engine_ratio", {}).items():
        lines.append("")
        lines.append(f"* {engine} / uvicorn throughput: **{ratio}** (overhead {1 / ratio:.2f}x)" if ratio
                     else f"* {engine}: no answer")
    sq, pg = hist["backends"]["sqlite"], hist["backends"]["postgresql"]
    lines += ["", f"History (`benchmarks/results/history_store.json`, {hist['config']['rows_per_upload']} rows per "
              f"upload, one writer): {hist['blob_bytes_per_row']} B of safetensors per row; on disk "
              f"{sq['bytes_per_row']} B/row (SQLite), {pg['bytes_per_row']} B/row (PostgreSQL); "
              f"{sq['uploads_per_s']} / {pg['uploads_per_s']} uploads/s committed (SQLite / PostgreSQL).", ""]
    ray = next((r for n, r in rows.items() if n == "ray/batched"), rows.get("batched"))
    t = ray["req_per_s"]
    down = ray["down_bytes_per_answer"]
    up = ray["bytes_up"] / max(ray["requests_ok"] + ray["errors"], 1)
    devices = replicas * t * util * 3600 / per_hour
    nic_rate = nic_gbit * 1e9 / 8 / (up + down)
    growth = devices * rows_per_day * pg["bytes_per_row"]
    db_uploads = devices * rows_per_day / hist["config"]["rows_per_upload"] / 86400
    lines += [f"Worked example (arguments of the script): {replicas} replicas of the Ray row (T = {t}/s each, "
              f"this machine's 2 cores per replica), utilisation {util}, {per_hour:g} adaptation(s) per device per "
              f"hour, {rows_per_day:g} history rows per device per day, a {nic_gbit:g} Gbit/s NIC:", "",
              f"* devices served: D = N x T x u x 3600 / r = {replicas} x {t} x {util} x 3600 / {per_hour:g} = "
              f"**{devices:,.0f}**",
              f"* NIC: one adaptation moves {up + down:,.0f} B, so the NIC carries {nic_rate:,.0f} adaptations/s = "
              f"{nic_rate / t:,.1f} replicas' worth; it is the next bottleneck past that many replicas per node "
              "(int8 downlink: about a quarter of the bytes)",
              f"* history growth: D x k x b = {devices:,.0f} x {rows_per_day:g} x {pg['bytes_per_row']} B = "
              f"**{growth / 1e9:,.2f} GB/day** in PostgreSQL",
              f"* database: {db_uploads:,.1f} uploads/s against {pg['uploads_per_s']} per writer connection measured "
              f"({db_uploads / pg['uploads_per_s']:.1%} of one connection)", "", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", type=Path, default=ROOT / "benchmarks/results/serve_engines/serve.json")
    ap.add_argument("--history", type=Path, default=ROOT / "benchmarks/results/history_store.json")
    ap.add_argument("--per-hour", type=float, default=1.0, help="adaptations per device per hour (r)")
    ap.add_argument("--rows-per-day", type=float, default=24.0, help="history rows per device per day (k)")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--nic-gbit", type=float, default=10.0)
    ap.add_argument("--util", type=float, default=0.5, help="target utilisation u (headroom for peaks)")
    ap.add_argument("--write", type=Path, default=None, help="replace the generated block of this Markdown file")
    args = ap.parse_args()
    text = section(json.loads(args.serve.read_text()), json.loads(args.history.read_text()), per_hour=args.per_hour,
                   rows_per_day=args.rows_per_day, replicas=args.replicas, nic_gbit=args.nic_gbit, util=args.util)
    if args.write is None:
        print(text)
        return
    doc = args.write.read_text()
    a, b = doc.index(BEGIN), doc.index(END) + len(END)
    args.write.write_text(doc[:a] + text + doc[b:])


if __name__ == "__main__":
    main()
