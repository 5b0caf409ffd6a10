"""Cloud cost of one adaptation request at the seeds' shapes: FLOPs and parameters of every generator.

    python benchmarks/diagnostics/generator_cost.py --out benchmarks/results/generator_cost_seed_shapes

No data and no training: each generated-head method is built at C = 192 (the seeds' encoder width),
H = 96 and the seeds' answer vocabularies (V = 1000 MSVD-QA, 1500 MSRVTT-QA, 1540 TGIF-QA), in its
whole-layer default and with ``residual=True``, and one ``generate`` call on a zero upload of the
method's own shape is counted by ``bench.flops.count_flops`` (2 FLOPs per multiply-add; the
``macs`` column halves it, the convention the seeds' "28.2 M FLOPs" for DUET matches). The template
bank of StableSynthNet is left out (it is filled in ``fit``; fusing adds C·Q for the nearest-template
search, Q = the number of categories).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from paramcast import catalog as registry
from paramcast.bench.flops import count_flops
from paramcast.bench.report import markdown_table, write_result

METHODS = ("f-hyper", "cdc-mmpg", "stablesynthnet", "duet")
VOCABS = {"MSVD-QA": 1000, "MSRVTT-QA": 1500, "TGIF-QA": 1540}


def measure(feature_dim: int = 192) -> list[dict]:
    rows = []
    for dataset, V in VOCABS.items():
        for name in METHODS:
            for residual in (False, True):
                kw = {"use_tde": False} if name == "stablesynthnet" else {}
                m = registry.create(name, num_answers=V, feature_dim=feature_dim, device="cpu", residual=residual,
                                    epochs=0, **kw)
                D = m.upload_frames
                up = torch.zeros(1, feature_dim) if D == 1 else torch.zeros(1, D, feature_dim)
                flops = count_flops(m.generate, up)
                rows.append({"dataset": dataset, "V": V, "method": name, "residual": residual,
                             "upload": f"{D} x {feature_dim}", "cloud_flops": flops, "macs": flops // 2,
                             "cloud_params": int(m.cloud_params())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/generator_cost_seed_shapes"))
    a = ap.parse_args()
    rows = measure()
    ratio = {}
    for dataset in VOCABS:
        by = {(r["method"], r["residual"]): r for r in rows if r["dataset"] == dataset}
        ratio[dataset] = by[("duet", False)]["cloud_flops"] / by[("stablesynthnet", False)]["cloud_flops"]
    res = {"feature_dim": 192, "head_hidden": 96, "rows": rows, "duet_over_stablesynthnet_flops": ratio}
    md = "# Cloud cost per request at the seeds' shapes (C = 192, H = 96)\n\n" + markdown_table(rows) + \
        "\nDUET / StableSynthNet cloud FLOPs (whole layer): " + \
        ", ".join(f"{d} {v:.1f}x" for d, v in ratio.items()) + "\n"
    print(md)
    write_result(res, a.out, md)


if __name__ == "__main__":
    main()
