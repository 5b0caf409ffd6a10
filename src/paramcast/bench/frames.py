"""Sampled-frames ablation (the seed's Table 4): D = 2, 3, 4, 5 frames, open-ended video QA.

One prepared run (same data, same frozen encoder, same cached per-frame features) and, for each D,
the methods re-created with ``sampled_frames = D`` (a field of both configs):

* ``cdc-mmpg``: D is the number of frames averaged into F_g, the ADR's reconstruction target
  (eq. 12–15); its time per epoch is the whole cloud training time divided by its epochs
  (ADR Phase I + FDA Phase II). Features are cached per frame, so D barely changes this cost.
* ``fine-tuning``: D frames per clip go through the encoder at every on-device step; its time is the
  median on-device adaptation time per device (``adapt_steps`` full-batch steps on k clips) — the
  analogue of the seed's "time of fine-tuning for each epoch", which grows with D.

The encoder itself is pretrained once with D = 3 (``EncoderConfig.sampled_frames``): re-pretraining
per D would change every method's features at once.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from paramcast.bench.videoqa import SPLITS, VideoQABenchConfig, create_method, evaluate_method, prepare

__all__ = ["FRAMES", "FRAMES_METHODS", "markdown", "plot", "run_frames"]

FRAMES = (2, 3, 4, 5)
FRAMES_METHODS = ("cdc-mmpg", "fine-tuning")


def run_frames(config: VideoQABenchConfig, frames: tuple[int, ...] = FRAMES) -> dict[str, Any]:
    """For each D in ``frames`` and each method of ``config.methods`` (cdc-mmpg / fine-tuning / f-hyper)."""
    prep = prepare(config)
    ds = prep.dataset
    rows = []
    for name in config.methods:
        for d in frames:
            over = {**config.method_overrides, name: {**config.method_overrides.get(name, {}), "sampled_frames": d}}
            cfg = dataclasses.replace(config, method_overrides=over)
            torch.manual_seed(config.seed)
            method = create_method(cfg, name, prep)
            t0 = time.perf_counter()
            method.fit(prep.features["history"])
            fit_s = time.perf_counter() - t0
            epochs = getattr(method.config, "epochs", 0) + (getattr(method.config, "adr_epochs", 0)
                                                          if getattr(method.config, "use_adr", False) else 0)
            torch.manual_seed(config.seed)
            r = evaluate_method(method, {s: prep.features[s] for s in SPLITS}, config.k, ds.vocab.devices,
                                repeats=2, profiles=["5G-100"])
            row = {"method": name, "D": d, "new": r["accuracy"]["new"]["filtered"],
                   "unseen": r["accuracy"]["unseen"]["filtered"], "fit_s": fit_s,
                   "cloud_s_per_epoch": fit_s / max(epochs, 1), "adapt_ms": r.get("adapt_ms")}
            rows.append(row)
            if config.progress:
                print(f"{name:12s} D={d} new {row['new']:.3f} unseen {row['unseen']:.3f} "
                      f"s/epoch {row['cloud_s_per_epoch']:.2f} adapt_ms {row['adapt_ms']}")
    return {"task": "frames-ablation", "config": dataclasses.asdict(config), "device": prep.device,
            "frames": list(frames),
            "dataset": {"preset": ds.config.name, "source": ds.config.source, "fingerprint": ds.config.fingerprint(),
                        "rows": {s: len(ds.split(s)) for s in ("history", *SPLITS)},
                        "num_answers": len(ds.vocab.answers)},
            "encoder": {"pretrain": prep.pretrain_log}, "timings": prep.timings, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    from paramcast.bench.report import markdown_table

    ds = result["dataset"]
    return (f"## Sampled-frames ablation — open-ended video QA, EmojiClips `{ds['preset']}` ({ds['source']}), "
            f"V = {ds['num_answers']}\n\n"
            "Filtered accuracy on new samples / unseen devices for D sampled frames. `cloud_s_per_epoch`: cloud "
            "training time / epochs (CDC-MMPG: ADR + FDA epochs; Fine-tuning: its cloud head); `adapt_ms`: median "
            "on-device fine-tuning time per device (Fine-tuning only; D frames per clip and step).\n\n"
            + markdown_table([{k: (100 * v if k in ("new", "unseen") else v) for k, v in r.items()}
                              for r in result["rows"]],
                             ["method", "D", "new", "unseen", "cloud_s_per_epoch", "fit_s", "adapt_ms"]))


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramcast.bench.report import save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["method"] for r in result["rows"]):
        rs = [r for r in result["rows"] if r["method"] == name]
        D = [r["D"] for r in rs]
        for key, ls in (("new", "-"), ("unseen", "--")):
            ax1.plot(D, [100 * r[key] for r in rs], ls, marker="o", label=f"{name} {key}")
        t = [r["adapt_ms"] / 1e3 if r.get("adapt_ms") else r["cloud_s_per_epoch"] for r in rs]
        ax2.plot(D, t, marker="o", label=f"{name}: " + ("on-device s / device" if rs[0].get("adapt_ms")
                                                        else "cloud s / epoch"))
    ax1.set_xlabel("sampled frames D")
    ax1.set_ylabel("accuracy (%)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("sampled frames D")
    ax2.set_ylabel("seconds")
    ax2.legend(fontsize=7)
    fig.suptitle("Sampled-frames ablation (open-ended video QA)")
    return save_figure(fig, path)
