"""Encoder pretraining on the cloud history and the per-split feature cache.

The encoder is trained once on the cloud's history with All-in-One's open-ended QA objective (mean
of D sampled frames' features -> QA head -> cross-entropy), then frozen: every method (CDC-MMPG and
the baselines) shares it, so every split's frames are encoded once into ``F_m (N, T, C)`` and the
methods train on those cached features. Both the weights and the features are cached on disk,
keyed by the data key and the encoder config (and the pretraining settings), as safetensors + JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from paramcast.data.base import IGNORE, ClipSet
from paramcast.data.store import ClipView, NpyWriter, open_npy, take_rows
from paramcast.models.encoder import ENCODER_VERSION, AllInOneEncoder, EncoderConfig, default_device
from paramcast.models.heads import QAHead
from paramcast.models.training import classification_step, warmup_cosine

__all__ = ["FeatureSet", "PretrainConfig", "cache_key", "cache_root", "encoder_digest", "encode_clipset", "feature_set", "fuse_to_npy",
           "load_or_pretrain", "pretrain_encoder", "stem_tokens"]


def cache_root(root: str | Path | None = None) -> Path:
    """Where pretrained encoders and features are cached: ``root``, ``$PARAMCAST_CACHE`` or ``./runs/cache``."""
    return Path(root or os.environ.get("PARAMCAST_CACHE") or Path.cwd() / "runs" / "cache")


@dataclass
class FeatureSet:
    """Rows of a split as the methods see them: cached features plus what device-side training needs.

    features (N, T, C) float per-frame multi-modal features F_m; answer (N,) int64 (IGNORE = -1 outside
    the vocabulary); device (N,) int64; frames / question: the raw inputs (only Fine-tuning, which
    retrains the encoder on the device, reads them; None when not kept); tokens: the frozen backbone's
    output for the same rows (:func:`stem_tokens`, float16), so that Fine-tuning re-runs only what it
    trains (None for a from-scratch encoder or when not kept).
    """

    features: torch.Tensor
    answer: torch.Tensor
    device: torch.Tensor
    frames: torch.Tensor | None = None
    question: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    tokens: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.answer.shape[0])

    def subset(self, index: torch.Tensor) -> FeatureSet:
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        return FeatureSet(self.features[index], self.answer[index], self.device[index], take_rows(self.frames, index),
                          take_rows(self.question, index), dict(self.meta), take_rows(self.tokens, index))


@dataclass(frozen=True)
class PretrainConfig:
    """How the encoder is pretrained on the cloud history."""

    epochs: int = 3               # passes over the (possibly capped) history
    batch_size: int = 32          # clips per step (small: a from-scratch encoder needs many steps)
    lr: float = 1e-3              # AdamW peak learning rate (linear warm-up, cosine decay to 0)
    weight_decay: float = 0.01    # AdamW weight decay
    max_rows: int = 0             # cap on history rows used (0 = all); keeps CPU pretraining bounded
    seed: int = 0                 # shuffling and frame sampling

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.max_rows < 0:
            raise ValueError("PretrainConfig: epochs >= 0, batch_size >= 1, lr > 0 and max_rows >= 0 are required")


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[info]}"), disable=not enabled, transient=False)


def pretrain_encoder(encoder: AllInOneEncoder, history: ClipSet, num_answers: int,
                     config: PretrainConfig = PretrainConfig(), progress: bool = True,
                     stem: torch.Tensor | None = None) -> dict:
    """Train encoder + a QA head on the history (open-ended QA, D sampled frames); returns a log dict.

    ``stem``: the history's frozen backbone output (:func:`stem_tokens`); then only the trained part
    runs (:meth:`AllInOneEncoder.fuse`). Frozen parameters (backbone stem, MiniLM embeddings) stay frozen.
    """
    dev = encoder.cls_token.device
    g = torch.Generator().manual_seed(config.seed)
    rows = torch.nonzero(history.answer != IGNORE).flatten()
    if config.max_rows and rows.numel() > config.max_rows:
        rows = rows[torch.randperm(rows.numel(), generator=g)[: config.max_rows]].sort().values
    head = QAHead(encoder.hidden, num_answers).to(dev)
    params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = max(1, config.epochs * -(-rows.numel() // config.batch_size))
    sched = warmup_cosine(opt, steps)
    T = history.frames.shape[1]
    D = encoder.train_frames(T)
    encoder.train()
    head.train()
    log = {"loss": [], "train_acc": [], "rows": int(rows.numel())}
    t0 = time.perf_counter()
    with _progress(progress) as bar:
        task = bar.add_task("pretrain encoder", total=steps, info="")
        for _ in range(config.epochs):
            order = rows[torch.randperm(rows.numel(), generator=g)]
            tot, correct, n = 0.0, 0, 0
            for s in range(0, order.numel(), config.batch_size):
                idx = order[s: s + config.batch_size]
                # D frames sampled per step, kept in temporal order (All-in-One's sparse sampling).
                fidx = torch.randperm(T, generator=g)[:D].sort().values
                if stem is not None:
                    feats = encoder.fuse(stem[idx][:, fidx], history.question[idx], frame_index=fidx.to(dev))
                else:
                    feats = encoder(history.frames[idx][:, fidx], history.question[idx], frame_index=fidx.to(dev))
                loss, right = classification_step(opt, sched, params, head(feats), history.answer[idx].to(dev))
                tot += loss * idx.numel()
                correct += right
                n += idx.numel()
                bar.update(task, advance=1, info=f"loss {tot / n:.3f} acc {correct / n:.3f}")
            log["loss"].append(tot / max(n, 1))
            log["train_acc"].append(correct / max(n, 1))
    encoder.eval()
    log["seconds"] = time.perf_counter() - t0
    return log


def cache_key(*parts) -> str:
    """A short stable hash of JSON-able ``parts``: the name of a cache entry."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encoder_digest(encoder: AllInOneEncoder) -> str:
    """Identity of an encoder's config and weights, for keys of caches computed with it."""
    return cache_key(encoder.config.to_dict(), [float(p.detach().double().sum()) for p in encoder.parameters()])


def load_or_pretrain(history: ClipSet, num_answers: int, data_key: str, config: EncoderConfig,
                     pretrain: PretrainConfig = PretrainConfig(), root: str | Path | None = None,
                     device: str | None = None, progress: bool = True,
                     words: list[str] | None = None) -> tuple[AllInOneEncoder, dict]:
    """The pretrained, frozen encoder for ``data_key`` (a cached copy when one exists).

    ``words``: the dataset's word list (needed by the default ``text="minilm"``).
    """
    device = device or default_device()
    directory = cache_root(root) / "encoders" / cache_key(data_key, config.to_dict(), pretrain.__dict__, num_answers, ENCODER_VERSION)
    if (directory / "model.safetensors").exists():
        encoder = AllInOneEncoder.load(directory, device)
        log = json.loads((directory / "pretrain.json").read_text()) if (directory / "pretrain.json").exists() else {}
        log["cached"] = True
        _say(progress, f"encoder cache hit: {directory}")
    else:
        torch.manual_seed(pretrain.seed)
        encoder = AllInOneEncoder(config, words=words).to(device)
        stem = stem_tokens(encoder, history, key=f"{data_key}-history", root=root, progress=progress)
        log = pretrain_encoder(encoder, history, num_answers, pretrain, progress, stem=stem)
        encoder.save(directory)
        (directory / "pretrain.json").write_text(json.dumps(log))
        log["cached"] = False
    encoder.requires_grad_(False).eval()
    log["path"] = str(directory)
    return encoder, log


def _say(enabled: bool, text: str) -> None:
    if enabled:
        from rich.console import Console

        Console(stderr=True).print(text)


def _clip_frames(clips: ClipSet) -> tuple[ClipView, torch.Tensor]:
    """(one row per distinct clip, as a view; (N,) each row's position in it)."""
    frames = clips.frames
    if isinstance(frames, ClipView):
        used, inv = frames.clips()
        return ClipView(frames.store, used, frames.mapping), inv
    N = len(clips)
    uniq, inv = torch.unique(clips.clip_id, return_inverse=True)
    first = torch.full((len(uniq),), N, dtype=torch.int64).scatter_reduce_(0, inv, torch.arange(N), reduce="amin")
    return ClipView(frames, first), inv


@torch.no_grad()
def stem_tokens(encoder: AllInOneEncoder, clips: ClipSet, key: str | None = None, root: str | Path | None = None,
                progress: bool = False, batch_size: int = 64) -> ClipView | None:
    """The frozen backbone's output for every row of ``clips``: a (N, T, c, h, w) float16 :class:`ClipView`.

    Computed once per clip (rows that share a clip share frames), ``batch_size`` clips at a time,
    and with ``key`` stored per clip in ``<cache>/stem/<hash>.npy`` (memory-mapped on use, like the
    frames; the hash covers ``key``, the rows, the backbone, its input size and the frame shape).
    The file is written under a temporary name and renamed when complete, so an interrupted run
    recomputes it. None for an encoder with nothing frozen to cache.
    """
    if not encoder.cacheable:
        return None
    per_clip, inv = _clip_frames(clips)
    c = encoder.config
    path = None
    if key is not None:
        name = cache_key(key, len(clips), c.vision, c.image_size, c.tuned_blocks, ENCODER_VERSION,
                         tuple(clips.frames.shape[1:]))
        path = cache_root(root) / "stem" / f"{name}.npy"
    if path is not None and path.exists():
        tokens, mapping = open_npy(path)
        _say(progress, f"backbone cache hit: {path.name} ({len(per_clip)} clips)")
        return ClipView(tokens, inv, mapping)
    U, writer, out = len(per_clip), None, []
    with _progress(progress) as bar:
        task = bar.add_task(f"backbone {key or ''}".strip(), total=-(-U // batch_size), info="")
        for s in range(0, U, batch_size):
            x = encoder.stem(per_clip[s: s + batch_size]).half().cpu()
            if path is None:
                out.append(x)
            else:
                if writer is None:
                    writer = NpyWriter(path.with_suffix(".partial"), (U, *x.shape[1:]), np.float16)
                writer.write(s, x.numpy())
            bar.update(task, advance=1)
    if path is None:
        return ClipView(torch.cat(out), inv)
    if writer is None:  # no clips: an empty store of the right rank
        return ClipView(torch.zeros(0, *clips.frames.shape[1:2], dtype=torch.float16), inv)
    writer.close()
    os.replace(writer.path, path)
    tokens, mapping = open_npy(path)
    return ClipView(tokens, inv, mapping)


@torch.no_grad()
def encode_clipset(encoder: AllInOneEncoder, clips: ClipSet, batch_size: int = 128,
                   progress: bool = False, label: str = "encode", stem: torch.Tensor | None = None) -> torch.Tensor:
    """F_m for every row: (N, T, C) float32 on the CPU (from ``stem`` tokens when given)."""
    encoder.eval()
    out = []
    with _progress(progress) as bar:
        task = bar.add_task(label, total=-(-len(clips) // batch_size), info="")
        for s in range(0, len(clips), batch_size):
            out.append(_fuse_rows(encoder, clips, stem, s, s + batch_size))
            bar.update(task, advance=1)
    return torch.cat(out) if out else torch.zeros(0, clips.frames.shape[1], encoder.hidden)


@torch.no_grad()
def _fuse_rows(encoder: AllInOneEncoder, clips: ClipSet, stem, a: int, b: int) -> torch.Tensor:
    """F_m of rows a..b-1: (b - a, T, C) float32 on the CPU."""
    q = clips.question[a:b]
    f = encoder.fuse(stem[a:b], q) if stem is not None else encoder(clips.frames[a:b], q)
    return f.float().cpu()


@torch.no_grad()
def fuse_to_npy(encoder: AllInOneEncoder, clips: ClipSet, stem, path: str | Path, batch_size: int = 128,
                progress: bool = False, label: str = "encode") -> torch.Tensor:
    """F_m of every row of ``clips`` (from ``stem`` when given) written batch by batch to ``path``
    (``.npy``, via a temporary name); returns it memory-mapped, (N, T, C) float32."""
    path = Path(path)
    writer = NpyWriter(path.with_suffix(".partial"), (len(clips), clips.frames.shape[1], encoder.hidden), np.float32)
    encoder.eval()
    with _progress(progress) as bar:
        task = bar.add_task(label, total=-(-len(clips) // batch_size), info="")
        for s in range(0, len(clips), batch_size):
            writer.write(s, _fuse_rows(encoder, clips, stem, s, s + batch_size).numpy())
            bar.update(task, advance=1)
    writer.close()
    os.replace(writer.path, path)
    return open_npy(path)[0]


@torch.no_grad()
def feature_set(encoder: AllInOneEncoder, clips: ClipSet, key: str | None = None, root: str | Path | None = None,
                keep_raw: bool = True, progress: bool = False, label: str = "encode",
                batch_size: int = 128) -> FeatureSet:
    """Encode ``clips`` (cached on disk under ``key`` + the encoder's weights hash when ``key`` is given).

    The per-row features (they depend on the question) are fused ``batch_size`` rows at a time from
    the per-clip stem cache; with ``key`` each batch is written straight to
    ``<cache>/features/<hash>.npy``, which the returned FeatureSet memory-maps, so memory grows with
    the batch, not with the split.
    """
    path = None
    if key is not None:
        path = cache_root(root) / "features" / f"{cache_key(key, encoder_digest(encoder), len(clips))}.npy"
    stem = stem_tokens(encoder, clips, key=key, root=root, progress=progress)
    if path is not None and path.exists():
        feats, _ = open_npy(path)
        _say(progress, f"feature cache hit: {path.name}")
    elif path is None:
        feats = encode_clipset(encoder, clips, batch_size=batch_size, progress=progress, label=label, stem=stem)
    else:
        feats = fuse_to_npy(encoder, clips, stem, path, batch_size, progress, label)
    return FeatureSet(feats, clips.answer.clone(), clips.device.clone(),
                      clips.frames if keep_raw else None, clips.question if keep_raw else None,
                      tokens=stem if keep_raw else None)
