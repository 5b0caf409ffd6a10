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
from paramcast.models.mllm_tasks import answer_logits, mc_logits

METRICS = ("MC", "DA", "CIDEr", "BLEU4", "CIDEr_in", "CIDEr_near", "CIDEr_out")
TARGETS = {"MC": 5.0, "DA": 5.0, "CIDEr": 5.0}


@torch.no_grad()
def _vqa(model, batch, blind: bool = False) -> dict:
    """MC / DA (%) of ``batch``; ``blind``: with every image token zeroed, what the model answers from the
    question alone (its text prior). A model whose scores sit at that line does not read the pixels."""
    image = torch.zeros_like(batch.image) if blind else batch.image
    logits = torch.cat([answer_logits(model.eval(), image[i:i + 256], None, batch.question[i:i + 256])[0]
                        for i in range(0, len(batch), 256)])
    n = max(len(batch), 1)
    return {"MC": 100.0 * float((mc_logits(logits, batch.candidates).argmax(-1) == batch.mc_label).sum()) / n,
            "DA": 100.0 * float((logits.argmax(-1) == batch.answer).sum()) / n}


def _in_domain(ds, cfg: CDCCABenchConfig, rows: int = 600):
    """The source devices' own new clips (split ``new``), held-out categories left out: the domain both
    models were trained on, so a model that reads pixels there but not on the rounds' devices is held
    back by the shift, and one that reads them nowhere by what it learned."""
    new = ds.split("new")
    held = torch.arange(len(ds.vocab.categories) - cfg.holdout_categories, len(ds.vocab.categories))
    keep = (new.device < cfg.source_devices) & ~torch.isin(new.category, held)
    return new.subset(keep.nonzero().flatten()[:rows])


def run_seed(ds, preset: str, seed: int, pair_cfg: PairConfig, device: str | None, rounds: int,
             teacher_devices: int = 0, teacher_all_categories: bool = False) -> dict:
    cfg = CDCCABenchConfig(preset=preset, seed=seed, rounds=rounds, teacher_devices=teacher_devices,
                           teacher_all_categories=teacher_all_categories)
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
        for name, enc, model, frames in (("teacher", pair.teacher_encoder, pair.teacher, pair_cfg.teacher_frames),
                                         ("student", pair.encoder, pair.student, 1)):
            t1 = time.perf_counter()
            batch = encode_rows(enc, test, text_width=width, frames=frames)
            out[name] = _scores(model, batch, test_split, pair, test.qtype)
            out[f"{name}_seconds"] = time.perf_counter() - t1
            out[f"{name}_blind"] = _vqa(model, batch, blind=True)
        per_round.append(out)
    indom = _in_domain(ds, cfg)
    in_domain = {"rows": len(indom)}
    for name, enc, model, frames in (("teacher", pair.teacher_encoder, pair.teacher, pair_cfg.teacher_frames),
                                     ("student", pair.encoder, pair.student, 1)):
        batch = encode_rows(enc, indom, text_width=_text_width(indom), frames=frames)
        in_domain[name], in_domain[f"{name}_blind"] = _vqa(model, batch), _vqa(model, batch, blind=True)
    mean = {who: {k: sum(r[who][k] for r in per_round) / len(per_round) for k in METRICS}
            for who in ("teacher", "student")}
    return {"seed": seed, "domains": info, "types": list(ds.vocab.qtypes), "pretrain_seconds": t_pre, "pretrain_log": pair.log,
            "rounds": per_round, "in_domain": in_domain, "mean": mean,
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
    ap.add_argument("--teacher-frames", type=int, default=PairConfig.teacher_frames,
                    help="frames of a clip the teacher reads (evenly spaced, first to last; 1 = the middle one, "
                         "as the student)")
    ap.add_argument("--teacher-tune-blocks", type=int, default=PairConfig.teacher_tune_blocks,
                    help="last blocks of the teacher's own backbone it fine-tunes (needs --teacher-vision efficientnet-lite2)")
    ap.add_argument("--teacher-augment-views", type=int, default=PairConfig.teacher_augment_views,
                    help="camera_jitter views per source clip in the teacher's training (0: clean frames only)")
    ap.add_argument("--teacher-devices", type=int, default=0,
                    help="training devices in the teacher's corpus (0: the source devices; bench cdcca's study)")
    ap.add_argument("--teacher-all-categories", action="store_true",
                    help="those other devices' rows include the held-out categories (a cloud that knows what the "
                         "device never saw; needs --teacher-devices > 4)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--from-json", default=None, metavar="PATH",
                    help="re-render a committed result (this script's JSON) with the current report, no training; "
                         "written to --out, still naming the command that measured it")
    ap.add_argument("--out", default="runs/cdcca_teacher_gap")
    args = ap.parse_args()
    if args.from_json:
        import shlex
        import sys

        old = json.loads(Path(args.from_json).read_text())
        sys.argv = shlex.split(old["command"])[1:]                  # the run's own command line
        measured = ap.parse_args()
        report(old["runs"], measured, PairConfig(**{**old["pair"], "teacher": PairConfig().teacher,
                                                    "student": PairConfig().student}), old["seconds"],
               out=Path(args.out))
        return
    t0 = time.perf_counter()
    ds = _load(CDCCABenchConfig(preset=args.preset))
    pair_cfg = PairConfig(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                          teacher_vision=args.teacher_vision, teacher_frames=args.teacher_frames,
                          teacher_tune_blocks=args.teacher_tune_blocks,
                          teacher_augment_views=args.teacher_augment_views)
    runs = []
    for s in range(args.seeds):
        runs.append(run_seed(ds, args.preset, s, pair_cfg, args.device, args.rounds, args.teacher_devices,
                             args.teacher_all_categories))
        print(json.dumps({"seed": s, "gap": runs[-1]["gap"], "mean": runs[-1]["mean"]}), flush=True)
        report(runs, args, pair_cfg, time.perf_counter() - t0)   # after every seed: a stopped run keeps its seeds


def report(runs: list[dict], args, pair_cfg: PairConfig, seconds: float, out: Path | None = None) -> None:
    types = [f"MC_{t}" for t in runs[0]["types"]]
    per_type = [{"type": t[3:], **{who: round(mean_std([sum(rd[who].get(t, 0.0) for rd in r["rounds"]) / len(r["rounds"])
                                                        for r in runs])["mean"], 2) for who in ("teacher", "student")}}
                for t in types]
    for row in per_type:
        row["gap"] = round(row["teacher"] - row["student"], 2)
    gap = {k: mean_std([r["gap"][k] for r in runs]) for k in METRICS}
    means = {who: {k: mean_std([r["mean"][who][k] for r in runs]) for k in METRICS} for who in ("teacher", "student")}
    targets = [{"target": f"teacher - student, {k} (round mean, {len(runs)} seed(s))", "measured": round(gap[k]["mean"], 2),
                "std over seeds": round(gap[k]["std"], 2), "needed": f">= {v:g}", "met": bool(gap[k]["mean"] >= v)}
               for k, v in TARGETS.items()]
    result = {"preset": args.preset, "teacher_devices": args.teacher_devices,
              "teacher_all_categories": args.teacher_all_categories, "pair": dataclasses.asdict(pair_cfg), "targets": targets, "gap": gap,
              "means": means, "mc_per_type": per_type, "runs": runs, "seconds": seconds}

    def pm(d: dict) -> str:
        return f"{d['mean']:.2f} ± {d['std']:.2f}"

    rows = [{"model": who, **{k: pm(means[who][k]) for k in METRICS}} for who in ("teacher", "student")]
    indom = [{"model": who + (", image zeroed" if blind else ""),
              **{k: pm(mean_std([r["in_domain"][who + ("_blind" if blind else "")][k] for r in runs])) for k in ("MC", "DA")}}
             for who in ("teacher", "student") for blind in (False, True)]
    rows.append({"model": "gap (teacher - student)", **{k: pm(gap[k]) for k in METRICS}})
    for who in ("teacher", "student"):
        blind = {k: mean_std([sum(rd[f"{who}_blind"][k] for rd in r["rounds"]) / len(r["rounds"]) for r in runs])
                 for k in ("MC", "DA")}
        result["means"][f"{who}_blind"] = blind
        rows.append({"model": f"{who}, image zeroed (text prior)",
                     **{k: pm(blind[k]) if k in blind else "" for k in METRICS}})
    def contribution(r: dict, who: str, k: str, where: str) -> float:   # score - text prior, one seed
        if where == "in domain":
            return r["in_domain"][who][k] - r["in_domain"][f"{who}_blind"][k]
        return sum(rd[who][k] - rd[f"{who}_blind"][k] for rd in r["rounds"]) / len(r["rounds"])

    visual = [{"model": who, "where": where,
               **{k: pm(mean_std([contribution(r, who, k, where) for r in runs])) for k in ("MC", "DA")}}
              for where in ("target devices", "in domain") for who in ("teacher", "student")]
    result["visual_contribution"] = visual
    per_round = [{"seed": r["seed"], "round": rd["round"], "device": rd["device"], "rows": rd["rows"],
                  **{f"{k} {who[0]}": rd[who][k] for who in ("teacher", "student") for k in ("MC", "DA", "CIDEr")}}
                 for r in runs for rd in r["rounds"]]
    md = ("## CD-CCA: is the cloud teacher better than the device student on the target devices?\n\n"
          "Pretrained pair (`paramcast.models.mllm_pretrained`), source-domain training only, no adaptation; "
          "the evaluation half of each round's unseen device (bench cdcca's rows). MC / DA in %, CIDEr x100; "
          "mean ± std over seeds of the round means.\n\n"
          + markdown_table(targets) + "\n" + markdown_table(rows)
          + f"\nIn domain: the source devices' own new clips ({runs[0]['in_domain']['rows']} rows, seen categories), "
          "MC / DA with the image and with it zeroed:\n\n" + markdown_table(indom)
          + "\nVisual contribution (score with the image minus the same model's text prior, paired per seed; "
          "mean ± std over seeds):\n\n" + markdown_table(visual)
          + "\nMC per question type (mean over rounds and seeds; a type's rows are few, read the gaps loosely):\n\n"
          + markdown_table(per_type) + "\n" + markdown_table(per_round)
          + f"\nDomains (seed 0): {runs[0]['domains']}\n\nPretraining (seed 0): teacher "
          f"{runs[0]['pretrain_log']['teacher']['seconds']:.0f}s on {runs[0]['pretrain_log']['teacher']['rows']} rows, "
          f"student {runs[0]['pretrain_log']['student']['seconds']:.0f}s on {runs[0]['pretrain_log']['student']['rows']} "
          f"rows; total {seconds:.0f}s.\n")
    print(md)
    print(json.dumps({k: str(v) for k, v in write_result(result, out or Path(args.out), md).items()}))


if __name__ == "__main__":
    main()
