"""Video-text retrieval on EmojiClips captions: VR@K (video -> text) and TR@K (text -> video), K = 1, 5, 10.

Naming follows the seed (cdc-mmpg §4.2): **VR@K** is the recall of video-to-text retrieval (a video
queries the split's captions), **TR@K** of text-to-video (a caption queries the split's videos).

Rows: one per clip (EmojiClips asks 2 questions per clip; they share the clip's caption). Towers on
the same frozen encoder as open-ended QA (:func:`paramcast.bench.videoqa.prepare`):

* video side: the encoder's per-frame features of the clip with an empty question (``[CLS]`` only),
  ``(T, C)``, pooled by the method's device model (mean over frames -> static ``Linear(C, 96) -> LN ->
  GELU``) -> the method's last layer ``Linear(96, E)`` (E = ``embed_dim``, 64): **the part the
  generated methods personalise** (hypernetwork hidden 256, the seed's retrieval setting);
* text side: the mean over the caption's words of the encoder's own (frozen, QA-pretrained) BERT
  embeddings (word + position + LayerNorm), ``(C,)`` -> ``TextTower`` MLP ``Linear(C, C) -> LN -> GELU -> Linear(C, E)``, shared by all devices;
* similarity: cosine of the two embeddings.

Training (cloud, on the history's clips, 3 × the run's epochs): every method runs its **own** ``fit``
with one thing swapped, the loss: ``method.set_objective(CaptionInfoNCE(text, captions))`` makes the
output layer train against the symmetric InfoNCE (temperature 0.05) of its video embeddings and the
text tower's embeddings of the same rows' captions, instead of the QA cross-entropy (the text tower
trains with it). A row's ``answer`` is the row of its caption in the caption table. The bench knows
nothing else about a method; each keeps its own loop and what is its own: the generated methods
their per-device groups (``groups_per_step`` = 8 groups of ``group_size`` = 16 clips a step; a
group's layer generated from one frame of another clip of the same device), CDC-MMPG its ADR phase
and F_a, F-hyper F_g, DUET its 5 frames, StableSynthNet its nearest-template fusion with DCT + ODS on
the drivers of all the step's rows (category = the clip's sprite category, ``category="sprite"``);
source-only / F-linear / Fine-tuning their shuffled minibatches (128 rows, as many as a group step).
Evaluation goes through each method's own ``reset / device_step / cloud_step / apply / predict``
(``predict`` returns the video embedding): F-linear's and Fine-tuning's device-side adaptation on the
device's k (video, caption) pairs trains against the same objective, the text tower frozen after the
cloud fit; Fine-tuning then re-encodes the device's clips with its tuned encoder copy.

Evaluation per split: each device's first k clips adapt (and, for all methods alike, leave the
gallery); the rest of the split's clips of all devices form one gallery. A caption counts as correct
for a video if its word ids equal the video's own caption (EmojiClips captions can repeat); ties are
pessimistic (:func:`paramcast.bench.metrics.retrieval_ranks`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from paramcast import catalog, wire
from paramcast.bench.adapt import adapt, count
from paramcast.bench.mcqa import encode_cached
from paramcast.bench.metrics import retrieval_recall
from paramcast.bench.videoqa import SPLITS, VideoQABenchConfig, _method_kwargs, prepare
from paramcast.data.store import take_rows
from paramcast.models.features import FeatureSet

__all__ = ["RETRIEVAL_METHODS", "CaptionInfoNCE", "TextTower", "clip_rows", "markdown", "plot", "run_retrieval"]

RETRIEVAL_METHODS = ("source-only", "f-linear", "fine-tuning", "f-hyper", "cdc-mmpg", "duet", "stablesynthnet")
KS = (1, 5, 10)
EMBED_DIM = 64
TAU = 0.05
RETRIEVAL_EPOCHS = 3       # contrastive training gets 3x the shared epochs (the loss still falls at 1x), all methods alike


class TextTower(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def text_embedding(encoder: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Mean of the encoder's text embeddings over the non-pad tokens: (N, L) -> (N, C), on the CPU."""
    out = []
    for s in range(0, len(tokens), 512):
        emb, keep = encoder.embed_text(tokens[s: s + 512])
        keep = keep.float()[..., None]
        out.append(((emb * keep).sum(1) / keep.sum(1).clamp(min=1)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, encoder.hidden)


def clip_rows(clip_id: torch.Tensor) -> torch.Tensor:
    """Index of the first row of every clip, in row order."""
    first: dict[int, int] = {}
    for i, c in enumerate(clip_id.tolist()):
        first.setdefault(c, i)
    return torch.tensor(sorted(first.values()), dtype=torch.int64)


def info_nce(v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of matching rows of v, t (N, E), and the video -> text logits (N, N)."""
    logits = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T / TAU
    y = torch.arange(len(v), device=v.device)
    return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)), logits


class CaptionInfoNCE(nn.Module):
    """The retrieval objective a method trains its video layer against (``Method.set_objective``).

    The rows' ``answer`` is the index of their caption in ``captions`` (N, C) (all splits' captions, one
    table); the loss is the symmetric InfoNCE of the method's outputs (the video embeddings) against
    ``text(captions)`` of the same rows, ``correct`` the rows whose own caption is their top match in
    the batch. ``text`` trains with the method in the cloud ``fit``; the bench freezes it afterwards,
    so device-side adaptation (F-linear, Fine-tuning) trains the video side only.
    """

    def __init__(self, text: TextTower, captions: torch.Tensor):
        super().__init__()
        self.text, self.captions = text, captions

    def forward(self, outputs: torch.Tensor, data: FeatureSet, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        keep = rows >= 0
        v = outputs[keep.to(outputs.device)]                                   # (R, E), groups in order
        t = self.text(self.captions[data.answer[rows[keep]]].to(v.device))     # (R, E)
        loss, logits = info_nce(v, t)
        return loss, int((logits.argmax(-1) == torch.arange(len(v), device=v.device)).sum())


@torch.no_grad()
def evaluate_retrieval(method: Any, text: TextTower, video: FeatureSet, text_feats: torch.Tensor,
                       captions: torch.Tensor, k: int, devices: list[str]) -> dict[str, Any]:
    vids, keep, example, adapt_ms = [], [], None, []
    for d in video.device.unique().tolist():
        rows = torch.nonzero(video.device == d).flatten()
        shot_rows, rest = rows[:k], rows[k:]
        method.reset()
        shots = video.subset(shot_rows)
        shots.meta["device_id"] = devices[d] if d < len(devices) else str(d)
        with torch.enable_grad():                  # device-only methods train on the device
            got = adapt(method, shots)
        if got.update is not None:
            example = example or (got.upload, got.update)
        if got.device_ms is not None:
            adapt_ms.append(got.device_ms)
        vids.append(method.predict(video.subset(rest)))
        keep.append(rest)
    method.reset()
    keep_rows = torch.cat(keep)
    v = F.normalize(torch.cat(vids).float(), dim=-1)
    t = F.normalize(text(text_feats[keep_rows].to(next(text.parameters()).device)).cpu(), dim=-1)
    sim = v @ t.T                                                                      # (videos, captions)
    cap = captions[keep_rows]
    positive = (cap[:, None, :] == cap[None, :, :]).all(-1)                            # identical captions
    vr, tr = retrieval_recall(sim, positive, KS), retrieval_recall(sim.T, positive.T, KS)
    out = {**{f"VR@{q}": vr[q] for q in KS}, **{f"TR@{q}": tr[q] for q in KS}, "gallery": int(len(keep_rows)),
           "clips_with_repeated_caption": int((positive.sum(1) > 1).sum())}
    if example:
        out["bytes_up"], out["bytes_down"] = int(wire.tensor_nbytes(example[0])), int(wire.tensor_nbytes(example[1]))
    if adapt_ms:
        out["adapt_ms"] = sorted(adapt_ms)[len(adapt_ms) // 2]
    return out


def _retrieval_kwargs(config: VideoQABenchConfig, name: str) -> dict[str, Any]:
    """The shared budget, the retrieval training regime for every method alike, then the user's overrides."""
    fields = {f.name for f in dataclasses.fields(catalog.get(name).config_class)}
    regime = {"epochs": RETRIEVAL_EPOCHS * config.epochs, "lr": 2e-3, "weight_decay": 0.05, "group_size": 16,
              "groups_per_step": 8,
              "hyper_hidden": 256,                       # seed: 256 for retrieval
              "category": "sprite"}                      # StableSynthNet: its QA default (the answer) does not exist here
    if "group_size" not in fields:
        regime["batch_size"] = 128                       # static heads: 8 x 16 rows a step, as the groups' steps
    return _method_kwargs(config, name) | {k: v for k, v in regime.items() if k in fields} \
        | config.method_overrides.get(name, {})


def run_retrieval(config: VideoQABenchConfig) -> dict[str, Any]:
    """Video-text retrieval for every method of ``config.methods`` (EmojiClips only)."""
    if config.dataset is not None:
        raise ValueError("bench retrieval runs on EmojiClips captions; real datasets: not yet")
    bad = [m for m in config.methods if m not in RETRIEVAL_METHODS]
    if bad:
        raise ValueError(f"bench retrieval has no path for {bad}; supported: {list(RETRIEVAL_METHODS)}")
    prep = prepare(config)
    ds, enc = prep.dataset, prep.encoder
    data_key = f"{ds.config.name}-{ds.config.fingerprint()}-{prep.pretrain_log.get('path')}"
    t0 = time.perf_counter()
    video, text_feats, captions = {}, {}, {}
    offset = 0                     # a row's answer = its caption's row in the table of all splits' captions
    for s in ("history", *SPLITS):
        clips = ds.split(s)
        rows = clip_rows(clips.clip_id)
        frames = take_rows(clips.frames, rows)        # a view over the clip store: nothing read up front
        blank_q = torch.full((len(rows), 1, 1), 1, dtype=torch.int64)               # [CLS] only
        stem = take_rows(prep.features[s].tokens, rows)
        f = encode_cached(enc, frames, blank_q, f"ret-video-{data_key}-{s}", config.cache_root,
                          progress=config.progress, label=f"encode videos {s}", stem=stem)[:, 0]
        cap = clips.caption[rows]
        text_feats[s] = text_embedding(enc, cap)
        # raw frames + the blank question ride along for Fine-tuning, which re-encodes on the device
        video[s] = FeatureSet(f, offset + torch.arange(len(rows)), clips.device[rows], frames=frames,
                              question=blank_q[:, 0], meta={"category": clips.category[rows]}, tokens=stem)
        captions[s], offset = cap, offset + len(rows)
    prep.timings["retrieval_features_s"] = time.perf_counter() - t0
    for s in SPLITS:                                   # each device's first k clips adapt and leave the gallery
        if int(torch.bincount(video[s].device).max()) <= config.k:
            raise ValueError(f"k={config.k} leaves no gallery in {s}: no device has more than {config.k} clips "
                             f"there; use a smaller --k")

    results: dict[str, Any] = {}
    for name in config.methods:
        torch.manual_seed(config.seed)
        method = catalog.create(name, num_answers=EMBED_DIM, feature_dim=enc.hidden, encoder=enc,
                                 device=prep.device, seed=config.seed, progress=config.progress,
                                 **_retrieval_kwargs(config, name))
        text = TextTower(enc.hidden, EMBED_DIM).to(prep.device)
        method.set_objective(CaptionInfoNCE(text, torch.cat([text_feats[s] for s in ("history", *SPLITS)])))
        t0 = time.perf_counter()
        method.fit(video["history"])
        fit_s = time.perf_counter() - t0
        text.requires_grad_(False).eval()                                            # shared, fixed from here on
        t0 = time.perf_counter()
        r = {s: evaluate_retrieval(method, text, video[s], text_feats[s], captions[s], config.k, ds.vocab.devices)
             for s in SPLITS}
        results[name] = {"splits": r, "fit_s": fit_s, "eval_s": time.perf_counter() - t0, "train_log": method.log,
                         "c_params": int(method.cloud_params() or 0), "d_params": count(method.device_params())}
        if config.progress:
            print(f"{name:14s} " + "  ".join(f"{s} VR@1 {r[s]['VR@1']:.3f} TR@1 {r[s]['TR@1']:.3f}" for s in SPLITS))
    return {
        "task": "retrieval", "config": dataclasses.asdict(config), "device": prep.device, "embed_dim": EMBED_DIM,
        "dataset": {"preset": ds.config.name, "source": ds.config.source, "fingerprint": ds.config.fingerprint(),
                    "clips": {s: len(video[s]) for s in ("history", *SPLITS)},
                    "train_devices": int(ds.history.device.unique().numel()),
                    "unseen_devices": int(ds.unseen.device.unique().numel())},
        "encoder": {"pretrain": prep.pretrain_log}, "timings": prep.timings, "methods": results,
    }


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, r in result["methods"].items():
        for s in SPLITS:
            m = r["splits"][s]
            rows.append({"method": name, "split": s, **{k: 100 * m[k] for k in m if "@" in k},
                         "gallery": m["gallery"], "bytes_down": m.get("bytes_down"), "fit_s": r["fit_s"]})
    return rows


def markdown(result: dict[str, Any]) -> str:
    from paramcast.bench.report import markdown_table

    ds = result["dataset"]
    cols = ["method", "split", *(f"VR@{k}" for k in KS), *(f"TR@{k}" for k in KS), "gallery", "bytes_down", "fit_s"]
    return (f"## Video-text retrieval — EmojiClips `{ds['preset']}` ({ds['source']}), "
            f"{ds['train_devices']} training + {ds['unseen_devices']} unseen devices, embedding {result['embed_dim']}\n\n"
            "Recall in % (VR: video -> text, TR: text -> video, seed naming); gallery = the split's clips minus each "
            "device's k adaptation clips; identical captions count as correct; ties pessimistic.\n\n"
            + markdown_table(_rows(result), cols))


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramcast.bench.report import save_figure

    names = list(result["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, s in zip(axes, SPLITS, strict=True):
        for i, key in enumerate([f"VR@{k}" for k in KS] + [f"TR@{k}" for k in KS]):
            ax.bar([j + (i - 2.5) * 0.13 for j in range(len(names))],
                   [100 * result["methods"][n]["splits"][s][key] for n in names], 0.13, label=key)
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_title(f"retrieval, {s}")
    axes[0].set_ylabel("recall (%)")
    axes[1].legend(fontsize=7, ncol=2)
    return save_figure(fig, path)
