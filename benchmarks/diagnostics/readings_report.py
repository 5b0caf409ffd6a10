"""The seed-literal defaults next to paramcast's readings, as Markdown tables, from committed results.

    python benchmarks/diagnostics/readings_report.py [--results benchmarks/results]

Reads ``stablesynthnet_ablation_quick.json`` (generated-head methods, 3 method seeds, paired
differences per seed), ``videoqa_quick.json`` (the same rows in ``bench videoqa``, one seed) and
``cdcca_quick.json`` (TENT / CoTTA as published and paramcast's readings, 3 seeds, paired). The
CD-CCA table in docs/cd_cca.md is this script's output; docs/cdc_mmpg.md and docs/stablesynthnet.md
splice the results' own Markdown (``python -m paramcast.bench.docs``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _pm(d: dict, scale: float = 100.0, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{scale * d['mean']:{sign}.1f} ± {scale * d['std']:.1f}"


def ablation_table(res: dict, labels: list[str]) -> str:
    rows = res["rows"]
    out = ["| row | method | overrides | new | unseen | paired Δ new | paired Δ unseen | cloud params |",
           "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        if label not in rows:
            continue
        r = rows[label]
        over = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "defaults (seed-literal)"
        dn = _pm(r["paired_new"], signed=True) if "paired_new" in r else "–"
        du = _pm(r["paired_unseen"], signed=True) if "paired_unseen" in r else "–"
        out.append(f"| {label} | {r['method']} | {over} | {_pm(r['new'])} | {_pm(r['unseen'])} | {dn} | {du} | "
                   f"{r.get('c_params', 0):,} |")
    return "\n".join(out)


def videoqa_table(res: dict, labels: list[str]) -> str:
    out = ["| row | new (filt.) | unseen (filt.) | C-Param | cloud FLOPs |", "|---|---|---|---|---|"]
    for label in labels:
        s = res["summary"].get(label)
        if s is None:
            continue
        out.append(f"| {label} | {100 * s['new']:.1f} | {100 * s['unseen']:.1f} | {s['c_params']:,} | "
                   f"{s['cloud_flops'] / 1e6:.2f} M |")
    return "\n".join(out)


def cdcca_table(res: dict) -> str:
    S = res["summary"]
    out = ["| row | MC | DA | CIDEr | paired gain MC | paired gain DA | paired gain CIDEr |",
           "|---|---|---|---|---|---|---|"]
    names = ["Source-only", "TENT-continual", *(n for n, v in S["readings"].items() if v["vs"] == "TENT-continual"),
             "CoTTA", *(n for n, v in S["readings"].items() if v["vs"] == "CoTTA")]
    for n in names:
        m = S["methods"][n]
        out.append(f"| {n} | {_pm(m['MC'], 1)} | {_pm(m['DA'], 1)} | {_pm(m['CIDEr'], 1)} | "
                   f"{_pm(m['gain_MC'], 1, True)} | {_pm(m['gain_DA'], 1, True)} | {_pm(m['gain_CIDEr'], 1, True)} |")
    out += ["", "| reading | vs | Δ MC | Δ DA | Δ CIDEr |", "|---|---|---|---|---|"]
    for n, v in S["readings"].items():
        out.append(f"| {n} | {v['vs']} | {_pm(v['MC'], 1, True)} | {_pm(v['DA'], 1, True)} | {_pm(v['CIDEr'], 1, True)} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args()
    generated = ["cdc-mmpg", "cdc-mmpg eq17-anchor", "cdc-mmpg residual", "cdc-mmpg paramcast", "f-hyper",
                 "f-hyper residual", "full", "residual", "duet", "duet residual"]
    abl = a.results / "stablesynthnet_ablation_quick.json"
    if abl.exists():
        res = json.loads(abl.read_text())
        print(f"## Generated heads, `{abl.name}` (seeds {res['seeds']}; accuracy %, mean ± std; paired Δ = row minus "
              "the method's default row, per seed)\n")
        print(ablation_table(res, generated + [k for k in res["rows"] if k not in generated]), "\n")
    vqa = a.results / "videoqa_quick.json"
    if vqa.exists():
        res = json.loads(vqa.read_text())
        print(f"## `bench videoqa`, `{vqa.name}` (seed {res['config']['seed']}; accuracy %)\n")
        print(videoqa_table(res, [k for k in res["summary"] if not k.startswith("_")]), "\n")
    cd = a.results / "cdcca_quick.json"
    if cd.exists():
        res = json.loads(cd.read_text())
        if "readings" in res.get("summary", {}):
            print(f"## TENT / CoTTA, `{cd.name}` (seeds {res['seeds']}; round means, mean ± std)\n")
            print(cdcca_table(res), "\n")


if __name__ == "__main__":
    main()
