"""Diagnostic: how many AKD optimiser steps per round the uploaded samples bear (CD-CCA and PL only).

The cloud trains the student's adapters for ``AKDConfig.steps`` (default 40) batches of 32 per round on
every sample uploaded so far: 20-60 samples on the quick preset, so 40 steps are tens of epochs on a
few teacher-labelled samples. This sweeps the step count on the protocol of ``paramcast bench cdcca``
(same pretraining, rounds, seeds and per-row RNG) and reports round-mean MC / DA / CIDEr, mean ± std
over seeds and paired with source-only. It is a diagnostic: the default is *not* chosen from it.

    python benchmarks/diagnostics/cdcca_akd_steps.py --preset quick --seeds 2 \
        --out benchmarks/results/cdcca_akd_steps_quick
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from paramcast.bench.cdcca import CDCCABenchConfig, _load, _run_method, _variant, prepare
from paramcast.bench.report import markdown_table, mean_std, write_result
from paramcast.methods.cd_cca.method import CDCCA, MLLMSourceOnly, PretrainConfig

STEPS = (5, 10, 20, 40, 80)
KEYS = ("MC", "DA", "CIDEr")


def run(preset: str, seeds: int, device: str | None) -> dict:
    t0 = time.perf_counter()
    per_seed, ds = [], None
    for seed in range(seeds):
        cfg = CDCCABenchConfig(preset=preset, seed=seed, pretrain=PretrainConfig(seed=seed), device=device)
        ds = _load(cfg) if ds is None else ds
        pre, rounds, _ = prepare(cfg, ds)
        rows = {}
        torch.manual_seed(seed)
        rows["Source-only"] = _run_method(MLLMSourceOnly(pre), pre, rounds)["mean"]
        for steps in STEPS:
            for name, akd in (("CD-CCA", {}), ("PL", {"feature_loss": "none"})):
                torch.manual_seed(seed)
                method = CDCCA(pre, _variant(cfg.cdcca, akd={"steps": steps, **akd}))
                rows[f"{name}, {steps} steps"] = _run_method(method, pre, rounds)["mean"]
                print(f"seed {seed} {name:6s} {steps:3d} steps", {k: round(rows[f'{name}, {steps} steps'][k], 2)
                                                                 for k in KEYS}, flush=True)
        per_seed.append(rows)
    summary = {name: {k: mean_std([p[name][k] for p in per_seed]) |
                      {"gain": mean_std([p[name][k] - p["Source-only"][k] for p in per_seed])} for k in KEYS}
               for name in per_seed[0]}
    return {"preset": preset, "seeds": seeds, "steps": STEPS, "per_seed": per_seed, "summary": summary,
            "seconds": time.perf_counter() - t0}


def markdown(res: dict) -> str:
    rows = []
    for name, s in res["summary"].items():
        row = {"variant": name}
        for k in KEYS:
            row[k] = f"{s[k]['mean']:.2f} ± {s[k]['std']:.2f}"
            row[f"gain {k}"] = f"{s[k]['gain']['mean']:+.2f} ± {s[k]['gain']['std']:.2f}"
        rows.append(row)
    return "\n".join([f"# CD-CCA: AKD steps per round ({res['preset']}, {res['seeds']} seeds)", "",
                      "Round means; `gain` is paired with source-only in the same seed.", "",
                      markdown_table(rows), f"Total {res['seconds']:.0f}s.", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    ap.add_argument("--out", type=Path, default=Path("runs/cdcca_akd_steps"))
    a = ap.parse_args()
    res = run(a.preset, a.seeds, a.device)
    md = markdown(res)
    print(md)
    write_result(res, a.out, md)


if __name__ == "__main__":
    main()
