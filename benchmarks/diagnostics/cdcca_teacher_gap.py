"""Does CD-CCA's cloud teacher know more than the device? The gap before any adaptation (issue 16, item 1).

    python benchmarks/diagnostics/cdcca_teacher_gap.py --preset standard --seeds 1 \
        --out benchmarks/results/cdcca_teacher_gap_standard

The pretrained pair of :mod:`paramcast.models.mllm_pretrained` (teacher: EfficientNet-Lite2 tokens +
the 6-layer all-MiniLM-L6-v2 + a 4-layer query transformer; student = the device model: Lite0 tokens,
MiniLM word embeddings, a 2-layer query transformer) is pretrained on the source domain of
``paramcast bench cdcca`` (same ``_domains``: the first 4 training devices minus 3 held-out
categories; the student on at most 1,200 of those rows, the teacher on all of them), then both are
evaluated, never adapted, on the evaluation half of every round's unseen device (the rows every
method of the benchmark is scored on). Target: teacher >= student + 5 points MC and DA and
>= + 5 CIDEr, averaged over the rounds; reported per seed and as the mean over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from paramcast.bench.cdcca import CDCCABenchConfig, _domains, _load, _scores
from paramcast.bench.report import markdown_table, mean_std, write_result
from paramcast.models.mllm_pretrained import PairConfig, _text_width, encode_rows, pretrain_pair

METRICS = ("MC", "DA", "CIDEr", "BLEU4", "CIDEr_in", "CIDEr_near", "CIDEr_out")
TARGETS = {"MC": 5.0, "DA": 5.0, "CIDEr": 5.0}


def run_seed(ds, preset: str, seed: int, pair_cfg: PairConfig, device: str | None, rounds: int,
             teacher_devices: int = 0) -> dict:
    cfg = CDCCABenchConfig(preset=preset, seed=seed, rounds=rounds, teacher_devices=teacher_devices)
    teacher_source, source, target, info = _domains(ds, cfg)
    t0 = time.perf_counter()
    pair = pretrain_pair(source, ds.vocab, dataclasses.replace(pair_cfg, seed=seed), device, teacher_source)
    t_pre = time.perf_counter() - t0
    per_round = []
    for r, (rows, split) in enumerate(target):
        is_test = torch.isin(rows.clip_id, rows.clip_id.unique()[1::2])   # bench cdcca's evaluation half
        test = rows.subset(is_test)
        test_split = [split[i] for i in is_test.nonzero().flatten().tolist()]
        width = _text_width(test)
        out = {"round": r + 1, "device": info["round_devices"][r], "rows": len(test)}
        for name, enc, model in (("teacher", pair.teacher_encoder, pair.teacher), ("student", pair.encoder, pair.student)):
            t1 = time.perf_counter()
            out[name] = _scores(model, encode_rows(enc, test, text_width=width), test_split, pair)
            out[f"{name}_seconds"] = time.perf_counter() - t1
        per_round.append(out)
    mean = {who: {k: sum(r[who][k] for r in per_round) / len(per_round) for k in METRICS}
            for who in ("teacher", "student")}
    return {"seed": seed, "domains": info, "pretrain_seconds": t_pre, "pretrain_log": pair.log,
            "rounds": per_round, "mean": mean,
            "gap": {k: mean["teacher"][k] - mean["student"][k] for k in METRICS},
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--teacher-epochs", type=int, default=PairConfig.teacher_epochs)
    ap.add_argument("--student-epochs", type=int, default=PairConfig.student_epochs)
    ap.add_argument("--teacher-vision", default=PairConfig.teacher_vision,
                    help="efficientnet-lite2 (its own vision) or device (reads the device's Lite0 tokens)")
    ap.add_argument("--teacher-devices", type=int, default=0,
                    help="training devices in the teacher's corpus (0: the source devices; bench cdcca's study)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default="runs/cdcca_teacher_gap")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = _load(CDCCABenchConfig(preset=args.preset))
    pair_cfg = PairConfig(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                          teacher_vision=args.teacher_vision)
    runs = []
    for s in range(args.seeds):
        runs.append(run_seed(ds, args.preset, s, pair_cfg, args.device, args.rounds, args.teacher_devices))
        print(json.dumps({"seed": s, "gap": runs[-1]["gap"], "mean": runs[-1]["mean"]}), flush=True)
        report(runs, args, pair_cfg, time.perf_counter() - t0)   # after every seed: a stopped run keeps its seeds


def report(runs: list[dict], args, pair_cfg: PairConfig, seconds: float) -> None:
    gap = {k: mean_std([r["gap"][k] for r in runs]) for k in METRICS}
    means = {who: {k: mean_std([r["mean"][who][k] for r in runs]) for k in METRICS} for who in ("teacher", "student")}
    targets = [{"target": f"teacher - student, {k} (round mean, {len(runs)} seed(s))", "measured": round(gap[k]["mean"], 2),
                "std over seeds": round(gap[k]["std"], 2), "needed": f">= {v:g}", "met": bool(gap[k]["mean"] >= v)}
               for k, v in TARGETS.items()]
    result = {"preset": args.preset, "teacher_devices": args.teacher_devices, "pair": dataclasses.asdict(pair_cfg), "targets": targets, "gap": gap,
              "means": means, "runs": runs, "seconds": seconds}

    def pm(d: dict) -> str:
        return f"{d['mean']:.2f} ± {d['std']:.2f}"

    rows = [{"model": who, **{k: pm(means[who][k]) for k in METRICS}} for who in ("teacher", "student")]
    rows.append({"model": "gap (teacher - student)", **{k: pm(gap[k]) for k in METRICS}})
    per_round = [{"seed": r["seed"], "round": rd["round"], "device": rd["device"], "rows": rd["rows"],
                  **{f"{k} {who[0]}": rd[who][k] for who in ("teacher", "student") for k in ("MC", "DA", "CIDEr")}}
                 for r in runs for rd in r["rounds"]]
    md = ("## CD-CCA: is the cloud teacher better than the device student on the target devices?\n\n"
          "Pretrained pair (`paramcast.models.mllm_pretrained`), source-domain training only, no adaptation; "
          "the evaluation half of each round's unseen device (bench cdcca's rows). MC / DA in %, CIDEr x100; "
          "mean ± std over seeds of the round means.\n\n"
          + markdown_table(targets) + "\n" + markdown_table(rows) + "\n" + markdown_table(per_round)
          + f"\nDomains (seed 0): {runs[0]['domains']}\n\nPretraining (seed 0): teacher "
          f"{runs[0]['pretrain_log']['teacher']['seconds']:.0f}s on {runs[0]['pretrain_log']['teacher']['rows']} rows, "
          f"student {runs[0]['pretrain_log']['student']['seconds']:.0f}s on {runs[0]['pretrain_log']['student']['rows']} "
          f"rows; total {seconds:.0f}s.\n")
    print(md)
    print(json.dumps({k: str(v) for k, v in write_result(result, Path(args.out), md).items()}))


if __name__ == "__main__":
    main()
