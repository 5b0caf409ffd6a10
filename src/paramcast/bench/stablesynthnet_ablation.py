"""StableSynthNet's ablation on EmojiClips open-ended video QA: each component off, several seeds.

``run_ablation(preset, seeds=(0, 1, 2)) -> dict`` fits, per seed, the full model and the model with
Driver Contrastive Training, Offset-Driver Separation or Template-Driver Extraction switched off
(plus the ``category="sprite"`` variant and, for reference, the CDC-MMPG and DUET baselines; any
registered method can be added with ``baselines``, e.g. Fine-tuning for the seeds' claims) and the
paramcast readings of :data:`READINGS` next to the seed-literal defaults, adapts
every device through the one interface (:func:`paramcast.bench.videoqa.evaluate_method`) and reports
the accuracy on the training devices' new samples and on unseen devices as mean ± std over seeds:
stability across seeds is the seed paper's claim. Every row whose method also has a default row
(no overrides: ``full`` for StableSynthNet) carries the *paired* difference to it, per seed, as
mean ± std (``paired_new``, ``paired_unseen``): same data, same seed, one choice changed.

The data and the frozen encoder are those of ``run_videoqa`` with ``seed=data_seed`` (same caches);
the seeds vary the method's initialisation and training order only, so the spread is the method's.
The feature sets additionally carry ``meta["category"]`` (the main sprite's category) for the
``sprite`` variant.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paramcast import catalog
from paramcast.bench.report import mean_std
from paramcast.bench.videoqa import SPLITS, evaluate_method
from paramcast.models.encoder import EncoderConfig, default_device
from paramcast.models.features import PretrainConfig, feature_set, load_or_pretrain

__all__ = ["READINGS", "VARIANTS", "bench_ablation", "run_ablation"]

#: name -> StableSynthNet config overrides.
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-dct": {"use_dct": False},
    "no-ods": {"use_ods": False},
    "no-tde": {"use_tde": False},
    "sprite-category": {"category": "sprite"},
}

#: label -> (method, config overrides): paramcast's readings of eq. 17 (λ on the anchor term) and of
#: the generated layer (residual W_0 + ΔW), and F-hyper, the ablation the whole-layer claim is about.
READINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "residual": ("stablesynthnet", {"residual": True}),
    "cdc-mmpg eq17-anchor": ("cdc-mmpg", {"lam_on": "anchor"}),
    "cdc-mmpg residual": ("cdc-mmpg", {"residual": True}),
    "cdc-mmpg paramcast": ("cdc-mmpg", {"lam_on": "anchor", "residual": True}),
    "f-hyper": ("f-hyper", {}),
    "f-hyper residual": ("f-hyper", {"residual": True}),
    "duet residual": ("duet", {"residual": True}),
}


def _prepare(preset: str, data_seed: int, fusion_layers: int, pretrain_epochs: int, device: str,
             data_root: str | None, cache_root: str | None, progress: bool) -> dict[str, Any]:
    """EmojiClips + the cached encoder + per-split features, built exactly as ``run_videoqa`` builds them."""
    from paramcast.data.emojiclips import load

    ds = load(preset, seed=data_seed, root=data_root, progress=progress)
    data_key = f"{ds.config.name}-{ds.config.fingerprint()}"
    size = int(ds.history.frames.shape[2])
    enc_cfg = EncoderConfig(vocab_size=len(ds.vocab.words), image_size=size, patch_size=16 if size >= 64 else 8,
                            fusion_layers=fusion_layers, max_frames=max(16, ds.history.frames.shape[1]),
                            max_question_len=max(64, ds.history.question.shape[1]))
    encoder, _ = load_or_pretrain(ds.history, len(ds.vocab.answers), data_key, enc_cfg,
                                  PretrainConfig(epochs=pretrain_epochs, seed=data_seed), cache_root, device, progress,
                                  words=ds.vocab.words)
    feats = {}
    for s in ("history", *SPLITS):
        # raw inputs kept: a device-side baseline (Fine-tuning) re-encodes its shots with its own encoder copy
        fs = feature_set(encoder, ds.split(s), key=f"{data_key}-{s}", root=cache_root)
        fs.meta["category"] = ds.split(s).category.clone()
        feats[s] = fs
    return {"features": feats, "encoder": encoder, "num_answers": len(ds.vocab.answers), "feature_dim": encoder.hidden,
            "devices": ds.vocab.devices, "fingerprint": ds.config.fingerprint(),
            "categories": len(ds.vocab.categories)}


def run_ablation(preset: str = "quick", seeds: Sequence[int] = (0, 1, 2), variants: Sequence[str] | None = None,
                 baselines: Sequence[str] = ("cdc-mmpg", "duet"), readings: Sequence[str] | None = None, epochs: int = 20, k: int = 16, data_seed: int = 0,
                 fusion_layers: int = 2, pretrain_epochs: int = 2, device: str | None = None,
                 data_root: str | None = None, cache_root: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Fit and evaluate every variant (and baseline) for every seed; see the module docstring."""
    variants = list(VARIANTS) if variants is None else list(variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown ablation variants {bad}; known: {list(VARIANTS)}")
    readings = list(READINGS) if readings is None else list(readings)
    bad = [r for r in readings if r not in READINGS]
    if bad:
        raise ValueError(f"unknown readings {bad}; known: {list(READINGS)}")
    if not seeds:
        raise ValueError("seeds is empty: give at least one, e.g. (0, 1, 2)")
    dev = device or default_device()
    data = _prepare(preset, data_seed, fusion_layers, pretrain_epochs, dev, data_root, cache_root, progress)
    splits = {s: data["features"][s] for s in SPLITS}
    runs = [(v, "stablesynthnet", VARIANTS[v]) for v in variants] + [(b, b, {}) for b in baselines] + \
        [(r, *READINGS[r]) for r in readings]
    rows: dict[str, Any] = {}
    for label, method_name, overrides in runs:
        per_seed = []
        for seed in seeds:
            t0 = time.perf_counter()
            method = catalog.create(method_name, num_answers=data["num_answers"], feature_dim=data["feature_dim"],
                                     encoder=data["encoder"], device=dev, seed=seed, epochs=epochs, **overrides)
            method.fit(data["features"]["history"])
            fit_s = time.perf_counter() - t0
            r = evaluate_method(method, splits, k, data["devices"], repeats=3, profiles=["5G-100"])
            per_seed.append({"seed": seed, "new": r["accuracy"]["new"]["filtered"],
                             "unseen": r["accuracy"]["unseen"]["filtered"], "cloud_flops": r["cloud_flops"],
                             "c_params": r["c_params"], "d_params": r["d_params"],
                             "bytes_up": r["bytes_up"], "bytes_down": r["bytes_down"], "fit_s": fit_s})
            if progress:
                print(f"{label:16s} seed {seed}: new {per_seed[-1]['new']:.3f} unseen {per_seed[-1]['unseen']:.3f} "
                      f"({fit_s:.0f}s)")
        rows[label] = {"method": method_name, "overrides": overrides, "runs": per_seed,
                       "new": mean_std([p["new"] for p in per_seed]),
                       "unseen": mean_std([p["unseen"] for p in per_seed]),
                       "cloud_flops": per_seed[0]["cloud_flops"], "c_params": per_seed[0]["c_params"],
                       "bytes_up": per_seed[0]["bytes_up"],
                       "bytes_down": per_seed[0]["bytes_down"]}
    _paired(rows)
    return {"task": "videoqa-open", "preset": preset, "data_seed": data_seed, "seeds": list(seeds), "epochs": epochs,
            "k": k, "device": str(dev), "num_answers": data["num_answers"], "categories": data["categories"],
            "fingerprint": data["fingerprint"], "rows": rows}


def _paired(rows: dict[str, Any]) -> None:
    """Add ``vs``, ``paired_new``, ``paired_unseen`` to each row whose method has a default row."""
    defaults = {r["method"]: name for name, r in rows.items() if not r["overrides"]}
    for name, r in rows.items():
        ref = defaults.get(r["method"])
        if ref is None or ref == name:
            continue
        r["vs"] = ref
        for split in ("new", "unseen"):
            r[f"paired_{split}"] = mean_std([a[split] - b[split] for a, b in
                                             zip(r["runs"], rows[ref]["runs"], strict=True)])


def markdown(result: dict[str, Any]) -> str:
    """The ablation table: accuracy mean ± std over seeds, cloud FLOPs and payload bytes."""
    from paramcast.bench.report import markdown_table

    table = [{"variant": name, "method": r["method"],
              "new (filtered)": f"{r['new']['mean']:.3f} ± {r['new']['std']:.3f}",
              "unseen (filtered)": f"{r['unseen']['mean']:.3f} ± {r['unseen']['std']:.3f}",
              "paired Δ new": _pm(r.get("paired_new")), "paired Δ unseen": _pm(r.get("paired_unseen")),
              "vs": r.get("vs", ""),
              "cloud FLOPs": r["cloud_flops"], "cloud params": r.get("c_params"), "bytes up": r["bytes_up"], "bytes down": r["bytes_down"]}
             for name, r in result["rows"].items()]
    head = (f"# StableSynthNet ablation — EmojiClips `{result['preset']}`, seeds {result['seeds']}, "
            f"{result['epochs']} epochs, k = {result['k']}\n\n")
    return head + markdown_table(table)


def _pm(d: dict | None) -> str:
    return "" if d is None else f"{d['mean']:+.3f} ± {d['std']:.3f}"


def bench_ablation(preset: str = "quick", seeds: str = "0,1,2", epochs: int = 20, k: int = 16,
                   baselines: str = "cdc-mmpg,duet", readings: str = ",".join(READINGS), device: str | None = None,
                   out: Path = Path("runs/stablesynthnet_ablation")) -> dict[str, Path]:
    """``paramcast bench stablesynthnet-ablation``: run :func:`run_ablation`, write ``out``.json/.md.

    Typer-ready: every argument is a plain typed option (``seeds`` / ``baselines`` comma-separated).
    """
    from paramcast.bench.report import write_result

    result = run_ablation(preset, seeds=[int(s) for s in seeds.split(",") if s.strip()], epochs=epochs, k=k,
                          baselines=[b for b in baselines.split(",") if b.strip()],
                          readings=[r for r in readings.split(",") if r.strip()], device=device, progress=True)
    return write_result(result, Path(out), markdown(result))
