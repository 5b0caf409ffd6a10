"""Open-ended video QA benchmark on EmojiClips or a real dataset: every method through the one interface.

``run_videoqa(VideoQABenchConfig(...)) -> dict`` (JSON-able):

1. load the EmojiClips preset (or, with ``dataset``, a real dataset: see below); pretrain (or load
   the cached) All-in-One encoder on the history; encode every split once into per-frame features
   F_m (cached);
2. for each method: ``fit`` on the history; then for each device of ``new`` (training devices'
   fresh samples) and ``unseen`` (held-out devices): ``reset()``; the device's first ``k`` samples
   are its adaptation samples (collaborative methods upload one frame feature of the first one;
   F-linear / Fine-tuning train on the labelled ones) and are excluded from evaluation for every
   method alike; ``device_step -> cloud_step -> apply``; ``predict`` the rest;
3. report accuracies (filtered / unfiltered / worst device), parameter counts, cloud FLOPs, payload
   bytes (from shapes, and the wire-encoded size), measured cloud compute + apply time, transfer
   time per network profile, and the device-side baselines' measured on-device training time.

Real datasets (``dataset="msrvtt-qa" | "msvd-qa" | "tgif-frameqa"``, ``data_root`` = its directory,
layout in ``docs/datasets.md``): history = train, new = val (test when there is no val), unseen =
test. They have no devices, so **a device is one video**
(:mod:`paramcast.data.formats.benchmark`): the device uploads one frame feature of its video's first
question, the cloud generates a head for that video, and the video's questions are answered with it
(CDC-MMPG generates parameters per test video from one of its frames); training groups of
CDC-MMPG / F-hyper are likewise per training video. A video has only a handful of questions, so
its adaptation shots are its first ``min(k, n - 1)`` questions (F-linear / Fine-tuning train on
their labels; the collaborative methods upload the first one's anchor frame, no label), and they
are excluded from evaluation for every method alike; videos with a single question have nothing
left to evaluate and are skipped. ``k = 1`` evaluates all but one question of every video.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from paramcast import catalog, wire
from paramcast.bench.adapt import adapt, count
from paramcast.bench.flops import count_flops
from paramcast.bench.metrics import accuracy_report
from paramcast.bench.netsim import PROFILES, paper_table, transfer_ms
from paramcast.config import config
from paramcast.models.encoder import EncoderConfig, default_device
from paramcast.models.features import FeatureSet, PretrainConfig, cache_root, feature_set, load_or_pretrain
from paramcast.types import QUANTS, HeadParams, Upload

__all__ = ["METHODS", "Prepared", "VideoQABenchConfig", "create_method", "evaluate_method", "prepare", "result_rows",
           "run_videoqa"]

METHODS = ("source-only", "f-linear", "fine-tuning", "f-hyper", "cdc-mmpg")
SPLITS = ("new", "unseen")


@config
class VideoQABenchConfig:
    """One run of the open-ended video-QA benchmark."""

    preset: str = "quick"                 # EmojiClips preset: tiny | quick | standard
    source: str | None = None             # sprite source: emoji | shapes (None = the preset's own)
    seed: int = 0                         # data, encoder and method seed
    methods: list[str] = field(default_factory=lambda: list(METHODS))  # registered method names, in order
    k: int = 16                           # adaptation samples per device (excluded from evaluation for all)
    epochs: int = 20                      # cloud training epochs of every head / FDA (same for all methods)
    adr_epochs: int = 8                   # CDC-MMPG Phase I (ADR) epochs
    adapt_steps: int = 30                 # F-linear / Fine-tuning optimisation steps on the k samples
    fusion_layers: int = 2                # encoder: transformer layers of the fusion module
    fusion: str = "joint"                 # encoder: "joint" (all frames in one sequence) or "per-frame"
    tuned_blocks: int = 0                 # encoder: Lite0 blocks the cloud fine-tunes (0 = backbone frozen)
    pretrain_epochs: int = 3              # encoder pretraining epochs on the history
    pretrain_max_rows: int = 8000         # cap on history rows used for pretraining (0 = all): bounds CPU time
    method_overrides: dict[str, dict] = field(default_factory=dict)  # per-method config fields, e.g. {"cdc-mmpg": {"lr": 1e-3}}
    variants: dict[str, dict] = field(default_factory=dict)  # extra result rows after ``methods``: label ->
                                          #   {"method": registered name, **config fields}, e.g. the paramcast
                                          #   readings {"cdc-mmpg residual": {"method": "cdc-mmpg", "residual": true}}
    device: str | None = None             # torch device (None = cuda if available, else cpu)
    dataset: str | None = None            # real open-ended video-QA dataset (msrvtt-qa | msvd-qa | tgif-frameqa;
                                          #   data.formats.DATASETS); None = EmojiClips (preset / source)
    data_root: str | None = None          # with dataset: its directory (required); else the EmojiClips cache
                                          #   ($PARAMCAST_DATA or ./data when None)
    frames: int = 8                       # real datasets: T frames sampled per video
    image_size: int = 64                  # real datasets: frames resized to image_size x image_size
    limit: int = 0                        # real datasets: first rows of each split only (0 = all; quick trials)
    cache_root: str | None = None         # encoder / feature cache ($PARAMCAST_CACHE or ./runs/cache when None)
    timing_repeats: int = 20              # repeats of the cloud step for the median compute time
    profiles: list[str] = field(default_factory=lambda: list(PROFILES))  # network profiles (bench.netsim.PROFILES)
    downlink_quants: list[str] = field(default_factory=lambda: ["fp16", "int8", "nf4"])  # generated heads are
                                          #   also evaluated with the downlink quantised this way (bytes + accuracy)
    progress: bool = True                 # rich progress bars
    cache_methods: bool = True            # reuse a fitted method (checkpoint in the cache) when nothing it
                                          #   depends on changed: a re-run with warm caches only evaluates
    threads: int = 0                      # torch CPU threads (0 = leave as is); on a shared, loaded CPU 1 thread
                                          #   ran pretraining 4x faster than 2 (OpenMP threads stall each other)

    def __post_init__(self) -> None:
        errors = []
        if self.preset not in ("tiny", "quick", "standard"):
            errors.append(f"preset={self.preset!r}: use tiny, quick or standard")
        if self.source not in (None, "emoji", "shapes"):
            errors.append(f"source={self.source!r}: use emoji or shapes (or leave unset for the preset's)")
        if not self.methods:
            errors.append("methods is empty: name at least one, e.g. ['source-only', 'cdc-mmpg']")
        known = catalog.available()
        bad = [m for m in self.methods if m not in known]
        if bad:
            errors.append(f"unknown methods {bad}; available: {known}")
        for label, spec in self.variants.items():
            if label in self.methods:
                errors.append(f"variant {label!r} has the name of a method of methods: give it another label")
            elif not isinstance(spec, dict) or spec.get("method") not in known:
                errors.append(f"variant {label!r} needs 'method': one of {known} (then its config fields)")
        run = set(self.methods) | {v.get("method") for v in self.variants.values() if isinstance(v, dict)}
        bad = [m for m in self.method_overrides if m not in run]
        if bad:
            errors.append(f"method_overrides for methods not run: {bad}")
        if self.dataset is not None:
            from paramcast.data.formats import DATASETS
            from paramcast.data.formats.benchmark import videoqa_datasets

            fmt, videoqa = DATASETS.get(self.dataset.lower()), videoqa_datasets()
            if fmt is None:
                errors.append(f"dataset={self.dataset!r}: unknown; open-ended video-QA datasets: {videoqa}")
            elif fmt.task != "videoqa":
                errors.append(f"dataset={self.dataset!r} is a {fmt.task} dataset; this benchmark runs open-ended "
                              f"video QA: {videoqa}")
            if not self.data_root:
                errors.append(f"dataset={self.dataset!r} needs data_root (--data-root): the dataset's directory, "
                              "laid out as in docs/datasets.md")
        if self.image_size < 8 or self.image_size % _patch_size(self.image_size):
            errors.append(f"image_size={self.image_size}: use a multiple of 8 (of 16 from 64 up), e.g. 32 or 64")
        for f in ("k", "timing_repeats", "fusion_layers", "frames"):
            if getattr(self, f) < 1:
                errors.append(f"{f}={getattr(self, f)}: must be >= 1")
        for f in ("epochs", "adr_epochs", "adapt_steps", "pretrain_epochs", "pretrain_max_rows", "threads", "limit"):
            if getattr(self, f) < 0:
                errors.append(f"{f}={getattr(self, f)}: must be >= 0")
        bad = [q for q in self.downlink_quants if q not in QUANTS]
        if bad:
            errors.append(f"unknown downlink_quants {bad}; known: {list(QUANTS)}")
        bad = [p for p in self.profiles if p not in PROFILES]
        if bad:
            errors.append(f"unknown network profiles {bad}; known: {list(PROFILES)}")
        if errors:
            raise ValueError("; ".join(errors))


def _patch_size(image_size: int) -> int:
    """ViT patch of the benchmark's encoder: 16 from 64 px up (16 patches at 64), else 8."""
    return 16 if image_size >= 64 else 8


# --- payload sizes ---------------------------------------------------------------------------
def _bytes(payload: Any, encoded: bool = False) -> int:
    """Tensor bytes from shapes (what the seeds' tables count) or the whole encoded message."""
    if payload is None:
        return 0
    return int(wire.nbytes(payload) if encoded else wire.tensor_nbytes(payload))


# --- evaluation --------------------------------------------------------------------------------
def _device_rows(split: FeatureSet) -> dict[int, torch.Tensor]:
    return {int(d): torch.nonzero(split.device == d).flatten() for d in split.device.unique().tolist()}


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def evaluate_method(method: Any, splits: dict[str, FeatureSet], k: int, device_names: list[str],
                    repeats: int = 20, profiles: list[str] | None = None, leave_one: bool = False) -> dict[str, Any]:
    """Adapt + evaluate a fitted method on every device of every split (see module docstring).

    leave_one: a device's adaptation rows are its first ``min(k, n - 1)`` (real datasets, where a
    device is one video with a few questions); otherwise its first ``k``. Devices with no row left
    to evaluate are skipped.
    """
    profiles = profiles or list(PROFILES)
    res: dict[str, Any] = {"accuracy": {}, "adapt_ms_per_device": {}}
    example: tuple[Upload, HeadParams] | None = None
    adapt_ms: list[float] = []
    for split_name, split in splits.items():
        preds, answers, devices = [], [], []
        for d, rows in _device_rows(split).items():
            shots = min(k, rows.numel() - 1) if leave_one else k
            shot_rows, rest = rows[:shots], rows[shots:]
            if rest.numel() == 0:
                continue
            method.reset()
            shots = split.subset(shot_rows)
            shots.meta["device_id"] = device_names[d] if d < len(device_names) else str(d)
            got = adapt(method, shots)
            if got.update is not None:
                example = example or (got.upload, got.update)
            if got.device_ms is not None:
                adapt_ms.append(got.device_ms)
                res["adapt_ms_per_device"][shots.meta["device_id"]] = got.device_ms
            elif method.collaborative:
                res["adapt_ms_per_device"][shots.meta["device_id"]] = got.elapsed_ms
            preds.append(method.predict(split.subset(rest)).argmax(-1))
            answers.append(split.answer[rest])
            devices.append(split.device[rest])
        if not preds:
            raise ValueError(f"split {split_name!r}: no device has a row left to evaluate after its adaptation "
                             f"rows (k={k}{', at least 2 rows per device needed' if leave_one else ''})")
        res["accuracy"][split_name] = accuracy_report(torch.cat(preds), torch.cat(answers), torch.cat(devices))
    method.reset()

    res["d_params"], res["c_params"] = count(method.device_params()), count(method.cloud_params())
    res["collaborative"] = bool(method.collaborative)
    if example is not None:
        upload, update = example
        res["bytes_up"], res["bytes_down"] = _bytes(upload), _bytes(update)
        res["wire_bytes_up"], res["wire_bytes_down"] = _bytes(upload, encoded=True), _bytes(update, encoded=True)
        res["cloud_flops"] = count_flops(method.cloud_step, upload)
        res["cloud_ms"] = _median_ms(lambda: method.cloud_step(upload), repeats)
        res["apply_ms"] = _median_ms(lambda: method.apply(update), repeats)
        method.reset()
        compute = res["cloud_ms"] + res["apply_ms"]
        res["delay_ms"] = {p: compute + transfer_ms(res["bytes_up"], res["bytes_down"], PROFILES[p]) for p in profiles}
        res["transfer_ms"] = {p: transfer_ms(res["bytes_up"], res["bytes_down"], PROFILES[p]) for p in profiles}
    else:
        res.update(bytes_up=0, bytes_down=0, wire_bytes_up=0, wire_bytes_down=0, cloud_flops=0, cloud_ms=0.0,
                   apply_ms=0.0)
        if adapt_ms:
            # A device-only method's adaptation delay is its on-device training time (no transfer).
            res["adapt_ms"] = statistics.median(adapt_ms)
            res["delay_ms"] = {p: res["adapt_ms"] for p in profiles}
        else:
            res["delay_ms"] = {p: 0.0 for p in profiles}
    return res


def _method_kwargs(cfg: VideoQABenchConfig, name: str, extra: dict | None = None) -> dict[str, Any]:
    """Shared training budget for every method, plus its overrides (and a variant's fields, ``extra``)."""
    cls = catalog.get(name)
    fields = {f.name for f in dataclasses.fields(getattr(cls, "config_class", object))} \
        if dataclasses.is_dataclass(getattr(cls, "config_class", None)) else set()
    shared = {"epochs": cfg.epochs, "adr_epochs": cfg.adr_epochs, "adapt_steps": cfg.adapt_steps, "k": cfg.k}
    kw = {key: v for key, v in shared.items() if key in fields}
    kw.update(cfg.method_overrides.get(name, {}))
    kw.update(extra or {})
    return kw


def result_rows(cfg: VideoQABenchConfig) -> list[tuple[str, str, dict]]:
    """``(label, registered method, variant fields)`` of every result row: ``methods``, then ``variants``."""
    rows = [(name, name, {}) for name in cfg.methods]
    for label, spec in cfg.variants.items():
        fields = dict(spec)
        rows.append((label, fields.pop("method"), fields))
    return rows


@dataclass
class Prepared:
    """What every method of a run shares: the dataset, the frozen encoder and the encoded splits."""

    dataset: Any
    encoder: Any
    encoder_config: EncoderConfig
    pretrain_log: dict
    features: dict[str, FeatureSet]    # history / new / unseen
    device: str
    timings: dict[str, float]


def _load_data(config: VideoQABenchConfig) -> tuple[Any, str]:
    """(dataset with .history / .new / .unseen / .vocab / .split(), cache key naming its exact rows)."""
    if config.dataset is not None:
        from paramcast.data.formats import load_videoqa_benchmark

        ds = load_videoqa_benchmark(config.dataset, config.data_root, frames=config.frames, size=config.image_size,
                                    limit=config.limit, cache_dir=cache_root(config.cache_root) / "clips")
        return ds, f"{ds.name}-{ds.fingerprint}"
    from paramcast.data.emojiclips import load

    ds = load(config.preset, source=config.source, seed=config.seed, root=config.data_root, progress=config.progress)
    return ds, f"{ds.config.name}-{ds.config.fingerprint()}"


def prepare(config: VideoQABenchConfig) -> Prepared:
    """Load the data (EmojiClips preset or real dataset), pretrain (or load the cached) encoder, encode
    every split (cached). A real dataset's key (name, root, frames, size, limit, rows of every split)
    keeps its encoder and feature caches apart from every other dataset's."""
    dev = config.device or default_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds, data_key = _load_data(config)
    timings["data_s"] = time.perf_counter() - t0
    V = len(ds.vocab.answers)

    t0 = time.perf_counter()
    enc_cfg = EncoderConfig(vocab_size=len(ds.vocab.words), image_size=int(ds.history.frames.shape[2]),
                            patch_size=_patch_size(int(ds.history.frames.shape[2])),
                            fusion_layers=config.fusion_layers, fusion=config.fusion, tuned_blocks=config.tuned_blocks, max_frames=max(16, ds.history.frames.shape[1]),
                            max_question_len=max(64, ds.history.question.shape[1]))
    pre_cfg = PretrainConfig(epochs=config.pretrain_epochs, max_rows=config.pretrain_max_rows, seed=config.seed)
    encoder, pre_log = load_or_pretrain(ds.history, V, data_key, enc_cfg, pre_cfg, config.cache_root, dev,
                                        config.progress, words=ds.vocab.words)
    timings["pretrain_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    feats: dict[str, FeatureSet] = {}
    for s in ("history", *SPLITS):
        # A real dataset without a val split serves its test split as both new and unseen: encode it once.
        same = [o for o in feats if ds.split(o) is ds.split(s)]
        feats[s] = feats[same[0]] if same else feature_set(encoder, ds.split(s), key=f"{data_key}-{s}",
                                                           root=config.cache_root, progress=config.progress,
                                                           label=f"encode {s}")
    timings["features_s"] = time.perf_counter() - t0
    return Prepared(ds, encoder, enc_cfg, pre_log, feats, str(dev), timings)


def create_method(config: VideoQABenchConfig, name: str, prepared: Prepared, extra: dict | None = None) -> Any:
    """A registered method built for the prepared data, with the run's shared training budget."""
    return catalog.create(name, num_answers=len(prepared.dataset.vocab.answers), feature_dim=prepared.encoder.hidden,
                           encoder=prepared.encoder, device=prepared.device, seed=config.seed,
                           progress=config.progress, **_method_kwargs(config, name, extra))


class _QuantisedDownlink:
    """A method whose updates travel quantised: ``apply`` installs ``decode(encode(update, quant))``."""

    def __init__(self, method: Any, quant: str):
        self._method, self._quant = method, quant

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)

    def apply(self, update: Any) -> None:
        self._method.apply(wire.decode(wire.encode(update, self._quant)))


def downlink_cost(method: Any, splits: dict[str, FeatureSet], k: int, device_names: list[str], quants: list[str],
                  reference: dict[str, Any], leave_one: bool = False) -> dict[str, Any]:
    """Bytes and accuracy of a collaborative method's downlink per quantisation, next to fp32 (``reference``)."""
    first = splits[next(iter(splits))]
    method.reset()
    example = method.cloud_step(method.device_step(first.subset(torch.arange(min(k, len(first))))))
    method.reset()
    fp32 = wire.tensor_nbytes(example, "fp32")
    out: dict[str, Any] = {}
    for quant in quants:
        r = evaluate_method(_QuantisedDownlink(method, quant), splits, k, device_names, repeats=1, leave_one=leave_one)
        acc = {s: r["accuracy"][s]["filtered"] for s in splits}
        out[quant] = {"tensor_bytes": wire.tensor_nbytes(example, quant), "wire_bytes": wire.nbytes(example, quant),
                      "smaller_than_fp32": fp32 / wire.tensor_nbytes(example, quant), "accuracy": acc,
                      "drop_points": {s: 100 * (reference["accuracy"][s]["filtered"] - acc[s]) for s in splits}}
    return out


def fit_method(config: VideoQABenchConfig, name: str, prepared: Prepared,
               extra: dict | None = None) -> tuple[Any, float, bool]:
    """``(method, fit_seconds, cached)``: fitted on the history, or loaded from the method cache.

    The cache key covers the method, its resolved config (defaults included), the seed and the encoder (whose cache path already
    covers the data, the encoder config and pretraining); the fit time reported is the original one.
    """
    from paramcast.methods.base import CHECKPOINT_FORMAT
    from paramcast.models.features import cache_key

    method = create_method(config, name, prepared, extra)
    # the resolved config, defaults included: a changed default must not reuse a checkpoint fitted under the old one
    settings = dataclasses.asdict(method.config) if dataclasses.is_dataclass(getattr(method, "config", None)) \
        else _method_kwargs(config, name, extra)
    key = cache_key(name, settings, config.seed, prepared.pretrain_log.get("path"), CHECKPOINT_FORMAT)
    path = cache_root(config.cache_root) / "methods" / f"{name}-{key}.safetensors"
    info = path.with_suffix(".json")
    if config.cache_methods and path.exists() and info.exists():
        # rebuilt from the checkpoint's own arguments (e.g. StableSynthNet's template count, set in fit)
        method = catalog.from_checkpoint(path, encoder=prepared.encoder, device=prepared.device, seed=config.seed,
                                          progress=config.progress)
        meta = json.loads(info.read_text())
        method.log = meta.get("log", {})
        return method, float(meta["fit_s"]), True
    t0 = time.perf_counter()
    method.fit(prepared.features["history"])
    fit_s = time.perf_counter() - t0
    if config.cache_methods:
        method.save_checkpoint(path)
        info.write_text(json.dumps({"fit_s": fit_s, "log": getattr(method, "log", {})}, default=str))
    return method, fit_s, False


def run_videoqa(config: VideoQABenchConfig) -> dict[str, Any]:
    """Run the benchmark; returns a JSON-able dict (structure in ``docs/cdc_mmpg.md``)."""
    prep = prepare(config)
    ds, encoder, feats, timings, dev = prep.dataset, prep.encoder, prep.features, prep.timings, prep.device
    vocab = ds.vocab
    enc_cfg, pre_log = prep.encoder_config, prep.pretrain_log

    results: dict[str, Any] = {}
    for name, method_name, extra in result_rows(config):
        method, fit_s, cached = fit_method(config, method_name, prep, extra)
        torch.manual_seed(config.seed)          # evaluation draws the same numbers, fitted or loaded
        t0 = time.perf_counter()
        r = evaluate_method(method, {s: feats[s] for s in SPLITS}, config.k, vocab.devices,
                            config.timing_repeats, config.profiles, leave_one=config.dataset is not None)
        r["fit_s"], r["eval_s"], r["fit_cached"] = fit_s, time.perf_counter() - t0, cached
        if method.collaborative and config.downlink_quants:
            r["downlink"] = downlink_cost(method, {s: feats[s] for s in SPLITS}, config.k, vocab.devices,
                                          config.downlink_quants, r, leave_one=config.dataset is not None)
        r["train_log"] = getattr(method, "log", {})
        r["config"] = dataclasses.asdict(method.config) if dataclasses.is_dataclass(getattr(method, "config", None)) else {}
        r["method"], r["variant"] = method_name, extra
        results[name] = r
        if config.progress:
            acc = r["accuracy"]
            print(f"{name:12s} new {acc['new']['filtered']:.3f}  unseen {acc['unseen']['filtered']:.3f}  "
                  f"worst {min(acc['new']['worst_device'], acc['unseen']['worst_device']):.3f}  "
                  f"fit {fit_s:.1f}s{' (cached)' if cached else ''} eval {r['eval_s']:.1f}s")

    return {
        "task": "videoqa-open",
        "config": dataclasses.asdict(config),
        "device": str(dev),
        "dataset": _dataset_section(config, ds),
        "encoder": {"config": enc_cfg.to_dict(), "params": sum(p.numel() for p in encoder.parameters()),
                    "pretrain": pre_log},
        "timings": timings,
        "methods": results,
        "summary": _summary(results),
        "paper_table": paper_table(),
        "profiles": {p: dataclasses.asdict(PROFILES[p]) for p in config.profiles},
    }


def _dataset_section(config: VideoQABenchConfig, ds: Any) -> dict[str, Any]:
    vocab = ds.vocab
    common = {
        "rows": {"history": len(ds.history), "new": len(ds.new), "unseen": len(ds.unseen)},
        "num_answers": len(vocab.answers), "vocab_words": len(vocab.words),
        "frames": list(ds.history.frames.shape[1:]),
        "train_devices": int(ds.history.device.unique().numel()),
        "unseen_devices": int(ds.unseen.device.unique().numel()),
    }
    if config.dataset is None:
        return {"preset": ds.config.name, "source": ds.config.source, "fingerprint": ds.config.fingerprint(),
                **common, "devices": vocab.devices}
    # "preset" / "source" keep the keys every report reads; one device per video, so no device list.
    return {"name": ds.name, "root": str(ds.root), "preset": ds.name, "source": str(ds.root),
            "fingerprint": ds.fingerprint, "splits": ds.splits, "device": "video", "limit": ds.limit, **common,
            "new_devices": int(ds.new.device.unique().numel()),
            "skipped_videos": {r: ds.split(r).meta.get("skipped", []) for r in ("history", "new", "unseen")},
            "unseen_labels": {r: ds.split(r).meta.get("unseen", {}) for r in ("history", "new", "unseen")}}


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """One row per method: the headline numbers a report table shows."""
    rows = {}
    for name, r in results.items():
        acc = r["accuracy"]
        rows[name] = {
            "new": acc["new"]["filtered"], "unseen": acc["unseen"]["filtered"],
            "new_unfiltered": acc["new"]["unfiltered"], "unseen_unfiltered": acc["unseen"]["unfiltered"],
            "worst_device": min(acc["new"]["worst_device"], acc["unseen"]["worst_device"]),
            "d_params": r["d_params"], "c_params": r["c_params"], "cloud_flops": r["cloud_flops"],
            "bytes_up": r["bytes_up"], "bytes_down": r["bytes_down"],
            "delay_ms_5G-100": r["delay_ms"].get("5G-100", math.nan),
            "adapt_ms": r.get("adapt_ms"),
        }
    ft, ours = results.get("fine-tuning"), results.get("cdc-mmpg")
    if ft and ours and ft.get("adapt_ms") and "5G-100" in ours["delay_ms"]:
        rows["_delay_ratio_finetuning_over_cdc_mmpg_5G-100"] = ft["adapt_ms"] / ours["delay_ms"]["5G-100"]
    return rows
