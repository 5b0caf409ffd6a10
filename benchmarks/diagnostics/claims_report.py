"""The seeds' video-QA claims, each as holds / does not hold, from committed results.

    python benchmarks/diagnostics/claims_report.py [--results benchmarks/results] [--out benchmarks/results/claims]

Reads ``stablesynthnet_ablation_quick.json`` (every row fitted and evaluated for the same method seeds
on the same data and frozen encoder) and reports, per claim and split, the *paired* difference
(row A minus row B, per seed; mean ± sample std over seeds, in accuracy points) and the verdict:

``paramcast.bench.report.verdict``: ``A > B`` holds when mean − std > 0, ``A ≥ B`` when mean + std ≥ 0,
``A ≫ B`` (the seed reports 37.1 vs 11.1) when mean − std ≥ 5 points.

Where ``videoqa_standard.json`` (the ``make demo`` run, one seed) exists, its single-seed difference is
shown beside, with no spread. The rule is fixed here, before reading any result.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from paramcast.bench.report import verdict

#: (claim, row A, relation, row B) — the seeds' claims on open-ended video QA.
CLAIMS = [
    ("CDC-MMPG (no labels) ≥ Fine-tuning with labels (CDC-MMPG, Tables 1–2)", "cdc-mmpg", "≥", "fine-tuning"),
    ("CDC-MMPG ≫ F-hyper (CDC-MMPG, Tables 1–2)", "cdc-mmpg", "≫", "f-hyper"),
    ("StableSynthNet ≥ Fine-tuning with labels (StableSynthNet, Table 1)", "full", "≥", "fine-tuning"),
    ("StableSynthNet > DUET (StableSynthNet, Table 2)", "full", ">", "duet"),
]
_STANDARD_NAME = {"full": "stablesynthnet"}


def claims(ablation: dict, standard: dict | None = None) -> list[dict]:
    rows, out = ablation["rows"], []
    for text, a, rel, b in CLAIMS:
        if a not in rows or b not in rows:
            continue
        for split in ("new", "unseen"):
            diffs = [100 * (x[split] - y[split]) for x, y in zip(rows[a]["runs"], rows[b]["runs"], strict=True)]
            mean = statistics.fmean(diffs)
            std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            row = {"claim": text, "split": split, "A": a, "B": b, "paired_diff_points": round(mean, 2),
                   "std_points": round(std, 2), "seeds": len(diffs), "holds": verdict(mean, std, rel)}
            if standard is not None:
                s = standard["summary"]
                sa, sb = s.get(_STANDARD_NAME.get(a, a)), s.get(_STANDARD_NAME.get(b, b))
                if sa and sb:
                    row["standard_diff_points"] = round(100 * (sa[split] - sb[split]), 2)
            out.append(row)
    flops = {k: rows[k]["cloud_flops"] for k in ("full", "duet") if k in rows}
    if len(flops) == 2:
        out.append({"claim": "StableSynthNet needs fewer cloud FLOPs than DUET (StableSynthNet, §4: 0.62 M vs 28.2 M)", "split": "–", "A": "full", "B": "duet",
                    "paired_diff_points": None, "std_points": None, "seeds": 0,
                    "flops_ratio": round(flops["full"] / flops["duet"], 3), "holds": flops["full"] < flops["duet"]})
    return out


def markdown(rows: list[dict], ablation_name: str) -> str:
    out = [f"## The seeds' claims on open-ended video QA (`{ablation_name}`; paired per method seed, accuracy points)\n",
           "| claim | split | A − B, mean ± std | seeds | standard (1 seed) | holds |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["paired_diff_points"] is None:
            diff = f"FLOPs ratio {r['flops_ratio']}"
        else:
            diff = f"{r['paired_diff_points']:+.1f} ± {r['std_points']:.1f}"
        std1 = r.get("standard_diff_points")
        out.append(f"| {r['claim']} | {r['split']} | {diff} | {r['seeds'] or '–'} | "
                   f"{'–' if std1 is None else f'{std1:+.1f}'} | {'holds' if r['holds'] else 'does not hold'} |")
    return "\n".join(out) + "\n"


def main() -> None:
    from paramcast.bench.report import write_result

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/claims_quick"))
    a = ap.parse_args()
    abl_path = a.results / "stablesynthnet_ablation_quick.json"
    ablation = json.loads(abl_path.read_text())
    std_path = a.results / "videoqa_standard.json"
    standard = json.loads(std_path.read_text()) if std_path.exists() else None
    rows = claims(ablation, standard)
    md = markdown(rows, abl_path.name)
    print(md)
    write_result({"ablation": str(abl_path), "standard": str(std_path) if standard else None, "claims": rows}, a.out, md)


if __name__ == "__main__":
    main()
