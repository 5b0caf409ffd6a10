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

Training (cloud, on the history's clips, 3 × the run's epochs): symmetric InfoNCE (temperature 0.05) over the
``groups_per_step`` × ``group_size`` (video, caption) pairs of a step, on per-device groups as in
CDC-MMPG's Phase II: the video layer that embeds a group is the one generated from one frame of
another clip of the same device (generated methods) or the static one. Each method keeps what is its
own: CDC-MMPG first trains its ADR (Phase I, unchanged) and feeds F_a; F-hyper feeds F_g of D frames;
DUET feeds 5 frames to its GRU generator; StableSynthNet fuses the frame with its nearest template
and adds DCT + ODS on its drivers, with the clip's sprite category as the category (templates updated
as in its ``fit``). Evaluation goes through each method's own ``reset / device_step / cloud_step /
apply / predict`` (``predict`` returns the video embedding). F-linear adapts its video tower on the
device's k labelled (video, caption) pairs (InfoNCE, ``adapt_steps`` full-batch steps, text tower
frozen); Fine-tuning does the same with its own copy of the encoder trainable too (all T frames of
the k clips, blank question) and then re-encodes the device's clips with it.

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
from paramcast.models.features import FeatureSet
from paramcast.models.heads import per_sample_linear, pool_frames
from paramcast.models.training import device_groups, warmup_cosine

__all__ = ["RETRIEVAL_METHODS", "TextTower", "clip_rows", "markdown", "plot", "run_retrieval"]

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


def info_nce(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows of v, t (N, E)."""
    logits = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T / TAU
    y = torch.arange(len(v), device=v.device)
    return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


def _video_layer(method: Any, anchors: torch.Tensor, cats: torch.Tensor, g: torch.Generator):
    """(W (G, E, H), b (G, E), extra loss) of the video tower's last layer for G anchors (G, T, C), with grad."""
    G = anchors.shape[0]
    zero = anchors.new_zeros(())
    if hasattr(method, "head"):                                     # static head (source-only, F-linear)
        return method.head.out.weight.expand(G, -1, -1), method.head.out.bias.expand(G, -1), zero
    if hasattr(method, "adaptor"):                                  # CDC-MMPG (F_a) / F-hyper (F_g)
        return (*method.adaptor(method.training_source(anchors, g)), zero)
    if hasattr(method, "driver"):                                   # StableSynthNet
        from paramcast.losses.contrastive import margin_info_nce, per_label_variance

        cfg = method.config
        frame = anchors[torch.arange(G), torch.randint(anchors.shape[1], (G,), generator=g)]
        fused = method.templates.fuse(frame, cfg.fusion_lambda) if method.templates is not None else frame
        driver = method.driver.projector(fused)
        losses, has = margin_info_nce(driver, cats, cfg.margin, cfg.temperature)
        var = per_label_variance(losses, cats, has)
        extra = zero
        if bool(has.any()):
            extra = cfg.cl_weight * losses[has].mean() * cfg.use_dct + cfg.ods_weight * var[has].mean() * cfg.use_ods
        if method.templates is not None:
            method.templates.update(frame, cats, var.detach())
        return (*method.driver.generate(driver), extra)
    return (*method.generator(method.anchor_frames(anchors, g)), zero)   # DUET


def _static(method: Any) -> nn.Module:
    return method.head.static if hasattr(method, "head") else method.model.static


def fit_retrieval(method: Any, text: TextTower, video: FeatureSet, text_feats: torch.Tensor, epochs: int,
                  lr: float = 2e-3, group_size: int = 16, groups_per_step: int = 8, seed: int = 0) -> list[dict]:
    """Cloud training of the method's video tower and the text tower (module docstring)."""
    dev = next(text.parameters()).device
    g = torch.Generator().manual_seed(seed)
    if getattr(method, "generator", None) is not None and hasattr(method, "fit_adr"):
        method.log["adr"] = method.fit_adr(video, g)                # CDC-MMPG Phase I, unchanged
        method.generator.requires_grad_(False).eval()
    if hasattr(method, "driver") and method.config.use_tde:
        from paramcast.methods.stablesynthnet.model import TemplateBank

        cats = int(video.meta["category"].max()) + 1
        method.templates = TemplateBank(method.feature_dim, cats, method.config.beta, method.config.gamma).to(dev)
    frozen = getattr(method, "generator", None) if hasattr(method, "fit_adr") else None  # CDC-MMPG's ADR
    mods = [m for m in method.modules().values() if m is not frozen]
    params = [p for m in [*mods, text] for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    labels = torch.zeros(len(video), dtype=torch.long)
    n_groups = len(device_groups(video.device, labels, group_size, torch.Generator()))
    sched = warmup_cosine(opt, max(1, epochs * -(-n_groups // groups_per_step)))
    for m in [*mods, text]:
        m.train()
    log = []
    for _ in range(epochs):
        groups = device_groups(video.device, labels, group_size, g)
        tot, n = 0.0, 0
        for s in range(0, len(groups), groups_per_step):
            chunk = groups[s: s + groups_per_step]
            anchors = torch.tensor([a for a, _ in chunk])
            target = torch.cat([t for _, t in chunk])
            sizes = [t.numel() for _, t in chunk]
            weight, bias, extra = _video_layer(method, video.features[anchors].to(dev),
                                               video.meta["category"][anchors].to(dev), g)
            h = _static(method)(pool_frames(video.features[target].to(dev)))          # (R, H)
            owner = torch.repeat_interleave(torch.arange(len(chunk)), torch.tensor(sizes)).to(dev)
            v = per_sample_linear(h, weight[owner], bias[owner])                       # (R, E)
            loss = info_nce(v, text(text_feats[target].to(dev))) + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            tot, n = tot + loss.item() * target.numel(), n + target.numel()
        log.append({"loss": tot / max(n, 1)})
    for m in [*mods, text]:
        m.eval()
    method.model_version = f"{method.name}-retrieval-{seed}-{len(video)}"
    if hasattr(method, "head"):
        method.after_load()                                                            # reset() -> trained head
    method.reset()
    return log


def _adapt_on_device(method: Any, text: TextTower, shots: FeatureSet, text_feats: torch.Tensor) -> float:
    """F-linear (video head) or Fine-tuning (its own encoder copy + video head) on the device's k
    (video, caption) pairs: InfoNCE, ``adapt_steps`` full-batch steps, text tower frozen. Seconds."""
    t0 = time.perf_counter()
    dev = next(text.parameters()).device
    finetune = method.name == "fine-tuning"
    params = method.trainable_parameters() if finetune else list(method.head.parameters())
    opt = torch.optim.AdamW(params, lr=method.config.adapt_lr, weight_decay=0.0)
    with torch.no_grad():
        t = text(text_feats.to(dev))
    method.head.train()
    if finetune:
        method.own_encoder.train()
    for _ in range(method.config.adapt_steps):
        if not finetune:
            feats = shots.features.to(dev)
        elif shots.tokens is not None:         # the frozen backbone's output: only the trained part reruns
            feats = method.own_encoder.fuse(shots.tokens, shots.question)
        else:
            feats = method.own_encoder(shots.frames, shots.question)
        loss = info_nce(method.head(feats), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    method.head.eval()
    if finetune:
        method.own_encoder.eval()
        method.adapted = True                  # predict() re-encodes the frames with the tuned encoder
    return time.perf_counter() - t0


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
        if method.name in ("f-linear", "fine-tuning"):
            with torch.enable_grad():
                adapt_ms.append(1e3 * _adapt_on_device(method, text, shots, text_feats[shot_rows]))
        else:
            got = adapt(method, shots)
            if got.update is not None:
                example = example or (got.upload, got.update)
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
    for s in ("history", *SPLITS):
        clips = ds.split(s)
        rows = clip_rows(clips.clip_id)
        frames = clips.frames[rows]
        blank_q = torch.full((len(rows), 1, 1), 1, dtype=torch.int64)               # [CLS] only
        stem = None if prep.features[s].tokens is None else prep.features[s].tokens[rows]
        f = encode_cached(enc, frames, blank_q, f"ret-video-{data_key}-{s}", config.cache_root,
                          progress=config.progress, label=f"encode videos {s}", stem=stem)[:, 0]
        cap = clips.caption[rows]
        text_feats[s] = text_embedding(enc, cap)
        # raw frames + the blank question ride along for Fine-tuning, which re-encodes on the device
        video[s] = FeatureSet(f, torch.zeros(len(rows), dtype=torch.long), clips.device[rows], frames=frames,
                              question=blank_q[:, 0], meta={"category": clips.category[rows]}, tokens=stem)
        captions[s] = cap
    prep.timings["retrieval_features_s"] = time.perf_counter() - t0

    results: dict[str, Any] = {}
    for name in config.methods:
        torch.manual_seed(config.seed)
        kw = _method_kwargs(config, name)
        if "hyper_hidden" in {f.name for f in dataclasses.fields(catalog.get(name).config_class)}:
            kw.setdefault("hyper_hidden", 256)                                       # seed: 256 for retrieval
        method = catalog.create(name, num_answers=EMBED_DIM, feature_dim=enc.hidden, encoder=enc,
                                 device=prep.device, seed=config.seed, progress=config.progress, **kw)
        method.log = getattr(method, "log", {})
        text = TextTower(enc.hidden, EMBED_DIM).to(prep.device)
        t0 = time.perf_counter()
        log = fit_retrieval(method, text, video["history"], text_feats["history"], RETRIEVAL_EPOCHS * config.epochs,
                            seed=config.seed)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = {s: evaluate_retrieval(method, text, video[s], text_feats[s], captions[s], config.k, ds.vocab.devices)
             for s in SPLITS}
        results[name] = {"splits": r, "fit_s": fit_s, "eval_s": time.perf_counter() - t0, "train_log": log,
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
