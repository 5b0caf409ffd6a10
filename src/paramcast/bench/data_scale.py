"""``paramcast bench data-scale``: the data pipeline at MSRVTT-QA's real size, with bounded memory.

For each requested scale (fraction of MSRVTT-QA: 10,000 videos, 243,680 questions at 1.0) it
writes an MSRVTT-QA-shaped root (:func:`~paramcast.data.formats.synthetic.write_msrvtt_qa_like`:
mp4 files, the release's JSON layout) and runs the video-QA data pipeline on it at the seeds'
input size (3 frames of 224×224, EfficientNet-Lite0 backbone, All-in-One-Ti-wide fusion):

| stage | what runs | over |
|---|---|---|
| annotations | ``read_annotations`` of train / val / test | every question |
| decode | PyAV, ``workers`` processes, into the memory-mapped per-clip store | every video |
| backbone | the frozen backbone (``stem_tokens``), cached per clip, memory-mapped | every video |
| pretrain | ``pretrain_encoder`` steps on the cached backbone output | ``pretrain_rows`` history rows |
| fuse | per-row features (they depend on the question) written batch by batch to a memory-mapped file | ``fuse_rows`` rows per split |
| answer | a QA head on the fused history rows, accuracy on the fused test rows | the fused rows |

``pretrain`` and ``fuse`` are per-row work whose cost is linear in the rows (they run on a fixed
number of rows, evenly spaced over each split, spread over the whole store, so they read from the
full-size files): fusing all 243,680 rows at 224 px (~1.3 GFLOP a row) would take hours on the
2-core machine, and their memory depends on the batch alone. Every other stage covers the whole split.

Each scale runs in a fresh Python process (the dataset is generated in another one first), so its
peak resident memory (``resource.getrusage``: ``ru_maxrss`` of the process, and of its decoder
processes) is its own. Per stage the result records wall seconds and the peak so far; per scale
the disk use of the videos, annotations, clip store, backbone cache and features. The result puts
the scales side by side (peak RSS ratio of the largest to the smallest).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataScaleConfig", "markdown", "run_data_scale", "run_scale"]

MB = 1 << 20


@dataclass(frozen=True)
class DataScaleConfig:
    scale: float = 0.1            # fraction of MSRVTT-QA (1.0 = 10,000 videos, 243,680 questions)
    root: str = "runs/data-scale"  # generated datasets and caches go under root/<scale>
    frames: int = 3               # T: the seeds' All-in-One-Ti setting
    size: int = 224               # H = W
    seed: int = 0
    workers: int = 0              # decoding / generating processes (0 = one per core, at most 8)
    pretrain_rows: int = 256      # history rows of the pretrain stage (1 epoch, batch 32)
    fuse_rows: int = 2048         # rows per split fused in the fuse stage
    stem_batch: int = 16          # clips per backbone batch (48 frames of 224 px: ~1 GB of activations)
    batch_size: int = 64          # rows per fusion batch
    device: str | None = None     # torch device (default: cuda when available)
    progress: bool = False


def _peak() -> dict:
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB, 1),
            "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / MB, 1)}


def _du(*paths: Path) -> int:
    total = 0
    for p in paths:
        files = [p] if p.is_file() else (p.rglob("*") if p.is_dir() else [])
        total += sum(f.stat().st_blocks * 512 for f in files if f.is_file())
    return total


def _dirs(cfg: DataScaleConfig) -> tuple[Path, Path]:
    work = Path(cfg.root) / f"scale-{cfg.scale:g}"
    return work / "msrvtt-qa", work


def generate(cfg: DataScaleConfig) -> dict:
    from paramcast.data.formats.synthetic import write_msrvtt_qa_like

    data, _ = _dirs(cfg)
    t0 = time.perf_counter()
    summary = write_msrvtt_qa_like(data, cfg.scale, seed=cfg.seed, workers=cfg.workers or None, progress=cfg.progress)
    return {"seconds": round(time.perf_counter() - t0, 2), "splits": summary}


def run_scale(cfg: DataScaleConfig) -> dict:
    """The pipeline on the generated root of ``cfg.scale`` (see the module docstring), in this process."""
    import torch

    from paramcast.data.formats import read_annotations
    from paramcast.models.encoder import AllInOneEncoder, EncoderConfig, default_device
    from paramcast.models.features import PretrainConfig, fuse_to_npy, pretrain_encoder, stem_tokens
    from paramcast.models.heads import QAHead

    data, work = _dirs(cfg)
    cache = work / "cache"
    dev = cfg.device or default_device()
    torch.manual_seed(cfg.seed)
    stages: dict[str, dict] = {}

    @contextmanager
    def stage(name: str):
        t0 = time.perf_counter()
        yield
        stages[name] = {"seconds": round(time.perf_counter() - t0, 2), **_peak()}

    splits = ("train", "val", "test")
    with stage("annotations"):
        ann, vocab = {}, None
        for s in splits:
            ann[s] = read_annotations("msrvtt-qa", data, s, vocab=vocab)
            vocab = ann[s].vocab
    with stage("decode"):
        clips = {s: ann[s].decode(cfg.frames, cfg.size, cache_dir=cache / "clips", workers=cfg.workers or None,
                                  progress=cfg.progress) for s in splits}
        del ann
    enc_cfg = EncoderConfig(vocab_size=len(vocab.words), image_size=cfg.size, max_frames=16, max_question_len=64)
    encoder = AllInOneEncoder(enc_cfg, words=vocab.words).to(dev)
    with stage("backbone"):
        stem = {s: stem_tokens(encoder, clips[s], key=f"data-scale-{cfg.scale:g}-{s}", root=cache,
                               progress=cfg.progress, batch_size=cfg.stem_batch) for s in splits}
    with stage("pretrain"):
        log = pretrain_encoder(encoder, clips["train"], len(vocab.answers),
                               PretrainConfig(epochs=1, max_rows=cfg.pretrain_rows, seed=cfg.seed),
                               progress=cfg.progress, stem=stem["train"])
    encoder.requires_grad_(False).eval()
    feats, picked = {}, {}
    with stage("fuse"):
        for s in splits:
            n = len(clips[s])
            idx = torch.linspace(0, n - 1, min(n, cfg.fuse_rows)).round().long().unique()
            picked[s] = idx
            path = cache / "features" / f"data-scale-{cfg.scale:g}-{s}-{len(idx)}.npy"
            feats[s] = fuse_to_npy(encoder, clips[s].subset(idx), stem[s].rows(idx), path, cfg.batch_size,
                                   cfg.progress, f"fuse {s}")
    with stage("answer"):
        y = {s: clips[s].answer[picked[s]] for s in splits}
        head = QAHead(encoder.hidden, len(vocab.answers)).to(dev)
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
        keep = (y["train"] >= 0).nonzero().flatten()
        g = torch.Generator().manual_seed(cfg.seed)
        for _ in range(5):
            for b in keep[torch.randperm(len(keep), generator=g)].split(256):
                loss = torch.nn.functional.cross_entropy(head(feats["train"][b].to(dev)), y["train"][b].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = torch.cat([head(f.to(dev)).argmax(-1).cpu() for f in feats["test"].split(1024)])
        acc = float((pred == y["test"]).double().mean())
    disk = {"videos": _du(data / "videos"), "annotations": _du(*data.glob("*_qa.json")),
            "clip_store": _du(*(cache / "clips").glob("*.clips.npy")),
            "backbone_cache": _du(cache / "stem"), "features": _du(cache / "features")}
    return {"scale": cfg.scale, "device": str(dev),
            "videos": {s: len(clips[s].frames.store) for s in splits},
            "questions": {s: len(clips[s]) for s in splits},
            "skipped_videos": sum(len(clips[s].meta.get("skipped", [])) for s in splits),
            "frames": [cfg.frames, cfg.size, cfg.size, 3],
            "stem_shape": list(stem["train"].shape[1:]),
            "pretrain_rows": log["rows"], "fused_rows": {s: len(picked[s]) for s in splits},
            "test_accuracy_fused_rows": acc,
            "stages": stages, **_peak(),
            "disk_bytes": disk}


def _child(mode: str, cfg: DataScaleConfig) -> dict:
    """Run ``mode`` (generate | run) for ``cfg`` in a fresh Python process; its JSON result."""
    out = Path(_dirs(cfg)[1]) / f"{mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-m", "paramcast.bench.data_scale", mode, json.dumps(dataclasses.asdict(cfg)),
                    str(out)], check=True, env=env)
    return json.loads(out.read_text())


def run_data_scale(base: DataScaleConfig, scales: list[float], partial=None) -> dict:
    """Every scale (smallest first), each generated and run in its own process; ``partial(result)``
    is called after each scale (so a long run leaves its finished scales behind)."""
    runs = []
    result: dict = {"config": dataclasses.asdict(base), "runs": runs}
    for sc in sorted(scales):
        cfg = dataclasses.replace(base, scale=sc)
        gen = _child("generate", cfg)
        run = _child("run", cfg)
        run["generate_seconds"] = gen["seconds"]
        runs.append(run)
        if len(runs) > 1:
            small = runs[0]
            result["ratios"] = {f"{r['scale']:g}_vs_{small['scale']:g}": {
                "questions": sum(r["questions"].values()) / sum(small["questions"].values()),
                "peak_rss": _run_peak(r) / _run_peak(small)} for r in runs[1:]}
        if partial is not None:
            partial(result)
    return result


def _run_peak(run: dict) -> float:
    return max(run["peak_rss_mb"], run["peak_rss_children_mb"])


def markdown(result: dict) -> str:
    from paramcast.bench.report import markdown_table

    runs = result["runs"]
    lines = ["# Data pipeline at MSRVTT-QA scale", "",
             "Synthetic MSRVTT-QA-shaped roots (mp4 + the release's JSON), 3 × 224×224 frames; "
             "peak RSS from `resource.getrusage` (main process; decoder processes separately).", ""]
    rows = [{"scale": r["scale"], "videos": sum(r["videos"].values()), "questions": sum(r["questions"].values()),
             "skipped": r["skipped_videos"], "peak RSS MB": r["peak_rss_mb"],
             "peak RSS decoders MB": r["peak_rss_children_mb"], "generate s": r["generate_seconds"],
             **{f"{k} s": v["seconds"] for k, v in r["stages"].items()},
             **{f"{k} MB": round(v / MB, 1) for k, v in r["disk_bytes"].items()}} for r in runs]
    lines.append(markdown_table(rows))
    for r in runs:
        lines += [f"Peak RSS after each stage, scale {r['scale']:g}: "
                  + ", ".join(f"{k} {v['peak_rss_mb']:.0f} MB" for k, v in r["stages"].items()), ""]
    for k, v in result.get("ratios", {}).items():
        lines.append(f"- {k}: {v['questions']:.1f}× the questions, peak RSS {v['peak_rss']:.2f}×")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    mode, cfg_json, out = argv
    cfg = DataScaleConfig(**json.loads(cfg_json))
    result = generate(cfg) if mode == "generate" else run_scale(cfg)
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
