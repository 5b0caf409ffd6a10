"""Can the benchmark tell the methods apart? Method-independent measurements on its own encoder and features.

    python benchmarks/diagnostics/videoqa_headroom.py benchmarks/videoqa/standard.yaml \
        --out benchmarks/results/videoqa_headroom_standard

1. per question type: the source-only head's accuracy on ``new`` next to the majority answer of that
   type in the history (the text prior) — equal means the encoder gives nothing visual for that type;
2. a vision-only CNN (3 frames stacked, 6 epochs) on the ``count`` rows: is the visual task learnable
   from this data at all?
3. headroom of personalisation: the source-only head fine-tuned on each training device's own
   *labelled history* (1,280 rows) — an upper bound for what a generated head can gain on ``new``
   (the best of a small grid of epochs x learning rates, :data:`ORACLE_GRID`, each reported);
4. how much of the device is in ONE uploaded frame feature: a linear probe frame feature -> device id.

Uses the same cached encoder and features as ``paramcast bench videoqa --config`` (run that first;
``make demo`` runs both). The three targets (issue "A real pretrained encoder") are checked and
reported as met / not met: visual content matters (source-only >= text prior + 10 pt on every question
type, every type being about the video, and >= 40 % overall on ``new``), personalisation headroom
(oracle >= source-only + 8 pt), the upload carries the device (probe >= 70 %).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn

from paramcast.bench.config import load_bench_config
from paramcast.bench.report import write_result
from paramcast.bench.videoqa import create_method, prepare
from paramcast.data.emojiclips._scenes import QTYPES


def per_qtype(prep, method) -> dict:
    ds, new = prep.dataset, prep.features["new"]
    hist, clips = ds.history, ds.split("new")
    ok = method.predict(new).argmax(-1) == new.answer
    out = {}
    for q, name in enumerate(QTYPES):
        sel = (clips.qtype == q) & (new.answer >= 0)
        prior = torch.mode(hist.answer[(hist.qtype == q) & (hist.answer >= 0)]).values
        out[name] = {"rows": int(sel.sum()), "source_only": ok[sel].float().mean().item(),
                     "text_prior": (new.answer[sel] == prior).float().mean().item()}
    return out


def vision_only_count(prep, epochs: int = 6, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    h, n = prep.dataset.history, prep.dataset.new
    q = QTYPES.index("count")
    tr = torch.nonzero((h.qtype == q) & (h.answer >= 0)).flatten()
    te = torch.nonzero((n.qtype == q) & (n.answer >= 0)).flatten()
    classes = h.answer[tr].unique().tolist()
    remap = {c: i for i, c in enumerate(classes)}
    y_te = torch.tensor([remap.get(int(a), -1) for a in n.answer[te]])

    def x(frames):  # (N, T, H, W, 3) uint8 -> 3 frames stacked as channels (N, 9, H, W)
        return frames[:, [0, frames.shape[1] // 2, -1]].permute(0, 1, 4, 2, 3).flatten(1, 2).float() / 255

    net = nn.Sequential(nn.Conv2d(9, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, len(classes)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    accs = []
    for _ in range(epochs):
        perm = tr[torch.randperm(len(tr))]
        y = torch.tensor([remap[int(a)] for a in h.answer[perm]])
        for s in range(0, len(perm), 64):
            loss = nn.functional.cross_entropy(net(x(h.frames[perm[s: s + 64]])), y[s: s + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            accs.append((net(x(n.frames[te])).argmax(-1) == y_te).float().mean().item())
    majority = max(classes, key=lambda c: int((h.answer[tr] == c).sum()))
    return {"rows_train": len(tr), "rows_test": len(te), "accuracy_per_epoch": accs,
            "majority": (y_te == remap[majority]).float().mean().item()}


def _oracle_heads(prep, method, epochs: int, lr: float) -> float:
    hist, new = prep.features["history"], prep.features["new"]
    ok = tot = 0
    for d in new.device.unique().tolist():
        head = copy.deepcopy(method.head).train()
        rows = torch.nonzero((hist.device == d) & (hist.answer >= 0)).flatten()
        opt = torch.optim.AdamW(head.parameters(), lr=lr)
        for _ in range(epochs):
            perm = rows[torch.randperm(len(rows))]
            for s in range(0, len(perm), 64):
                idx = perm[s: s + 64]
                loss = nn.functional.cross_entropy(head(hist.features[idx].to(method.device)), hist.answer[idx].to(method.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        head.eval()
        sel = (new.device == d) & (new.answer >= 0)
        with torch.no_grad():
            ok += int((head(new.features[sel].to(method.device)).argmax(-1).cpu() == new.answer[sel]).sum())
        tot += int(sel.sum())
    return ok / tot


#: The oracle's budgets: an upper bound may pick its best (it sees labels the methods never see).
ORACLE_GRID = [(5, 3e-4), (5, 1e-3), (20, 3e-4), (20, 1e-3), (20, 3e-3)]


def oracle_heads(prep, method, grid=ORACLE_GRID) -> dict:
    """The source-only head fine-tuned on each device's labelled history, for every (epochs, lr) of
    ``grid``; the oracle is the best of them on ``new`` (an upper bound is allowed to choose)."""
    runs = []
    for epochs, lr in grid:
        torch.manual_seed(0)
        runs.append({"epochs": epochs, "lr": lr, "new_filtered": _oracle_heads(prep, method, epochs, lr)})
    best = max(runs, key=lambda r: r["new_filtered"])
    return {**best, "grid": runs}


def device_probe(prep, max_iter: int = 500, l2: float = 1e-4) -> dict:
    """Linear probe frame-0 feature -> device id, fit to convergence: multinomial logistic regression on
    standardised features, full-batch L-BFGS (the usual linear-probe protocol, e.g. CLIP's), a small L2.
    (Until this round: 300 Adam steps of 512 rows, which stopped short of convergence on the standard
    preset: 43.7 % on new against 63.0 % converged, measured on the same features.)"""
    hist, new = prep.features["history"], prep.features["new"]
    x, y = hist.features[:, 0], hist.device
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    torch.manual_seed(0)
    lin = nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(xs), y) + l2 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        train = (lin(xs).argmax(-1) == y).float().mean().item()
        acc = (lin((new.features[:, 0] - mu) / sd).argmax(-1) == new.device).float().mean().item()
    return {"accuracy": acc, "train_accuracy": train, "chance": 1 / (int(y.max()) + 1)}


def targets(result: dict) -> list[dict]:
    """The issue's three targets, each measured / needed / met (values in %)."""
    so = 100 * result["source_only_new_filtered"]
    per = result["per_qtype"]
    worst = min(per, key=lambda k: per[k]["source_only"] - per[k]["text_prior"])
    gap = 100 * (per[worst]["source_only"] - per[worst]["text_prior"])
    oracle = 100 * result["oracle_per_device_head"]["new_filtered"] - so
    probe = 100 * result["device_probe_one_frame"]["accuracy"]
    rows = [("source-only on new (filtered), %", so, 40.0),
            (f"smallest source-only gain over the text prior, points (type: {worst})", gap, 10.0),
            ("oracle per-device head over source-only, points", oracle, 8.0),
            ("device identified from one uploaded frame feature, %", probe, 70.0)]
    return [{"target": t, "measured": round(v, 2), "needed": f">= {n:g}", "met": bool(v >= n)} for t, v, n in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--out", default="runs/videoqa_headroom")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = load_bench_config(args.config)
    cfg.progress = False
    t0 = time.perf_counter()
    prep = prepare(cfg)
    so = create_method(cfg, "source-only", prep)
    so.fit(prep.features["history"])
    base = so.predict(prep.features["new"]).argmax(-1) == prep.features["new"].answer
    result = {
        "config": args.config, "pretrain": {k: prep.pretrain_log.get(k) for k in ("train_acc", "rows", "seconds")},
        "source_only_new_filtered": base[prep.features["new"].answer >= 0].float().mean().item(),
        "per_qtype": per_qtype(prep, so), "vision_only_count": vision_only_count(prep),
        "oracle_per_device_head": oracle_heads(prep, so), "device_probe_one_frame": device_probe(prep),
    }
    result["targets"] = targets(result)
    result["seconds"] = time.perf_counter() - t0
    rows = [{"question type": k, **v, "gain_points": 100 * (v["source_only"] - v["text_prior"])}
            for k, v in result["per_qtype"].items()]
    from paramcast.bench.report import markdown_table

    md = ("## Can the benchmark tell the methods apart? Method-independent diagnostics\n\n"
          + markdown_table(result["targets"], ["target", "measured", "needed", "met"]) + "\n\n"
          + markdown_table(rows, ["question type", "rows", "source_only", "text_prior", "gain_points"])
          + f"\n\nsource-only on new: {result['source_only_new_filtered']:.3f}; per-device head fine-tuned on the device's "
          f"labelled history (oracle, best of the grid): {result['oracle_per_device_head']['new_filtered']:.3f}\n\n"
          + markdown_table(result["oracle_per_device_head"]["grid"], ["epochs", "lr", "new_filtered"]) + "\n\n"
          f"vision-only CNN on `count`: {max(result['vision_only_count']['accuracy_per_epoch']):.3f} "
          f"(majority {result['vision_only_count']['majority']:.3f})\n\n"
          f"device id from one frame feature (linear probe, fit to convergence): "
          f"{result['device_probe_one_frame']['accuracy']:.3f} on new, {result['device_probe_one_frame']['train_accuracy']:.3f} "
          f"on the history (chance {result['device_probe_one_frame']['chance']:.3f})\n")
    print(md)
    print(json.dumps({k: str(v) for k, v in write_result(result, Path(args.out), md).items()}))


if __name__ == "__main__":
    main()
