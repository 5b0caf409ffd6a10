"""Build, cache and load EmojiClips: ``history`` (training devices), ``new`` (same devices, fresh
clips) and ``unseen`` (held-out devices), as :class:`~paramcast.data.base.ClipSet` splits."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from paramcast.data.base import IGNORE, ClipSet, Vocab
from paramcast.data.emojiclips._assets import find_assets
from paramcast.data.emojiclips._clips import personal_sets, render_device
from paramcast.data.emojiclips._scenes import QTYPES, background_pool, make_devices
from paramcast.data.emojiclips._sprites import SpriteBank, emoji_bank, shapes_bank
from paramcast.data.emojiclips.config import PRESETS, EmojiClipsConfig
from paramcast.data.store import ClipView

__all__ = ["EmojiClips", "load", "data_root", "dataset_dir"]

SPLITS = ("history", "new", "unseen")
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
_FORMAT = 3  # bump when the on-disk layout or generation changes


@dataclass
class EmojiClips:
    config: EmojiClipsConfig
    vocab: Vocab
    history: ClipSet             # cloud history: the training devices' clips
    new: ClipSet                 # fresh clips of the training devices (personalisation)
    unseen: ClipSet              # held-out devices (generalisation)
    devices: list[dict]          # device specs, index = ClipSet.device
    path: Path                   # cache folder
    from_cache: bool = False     # True when this object was loaded, not built
    info: dict = field(default_factory=dict)  # build time and sprite provenance (not hashed)

    def split(self, name: str) -> ClipSet:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: use one of {SPLITS}")
        return getattr(self, name)


def data_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("PARAMCAST_DATA") or "data")


def dataset_dir(config: EmojiClipsConfig, root: str | Path | None = None) -> Path:
    return data_root(root) / config.name / f"{config.source}-seed{config.seed}"


def resolve_config(preset: str | EmojiClipsConfig, source: str | None = None, seed: int | None = None,
                   **overrides) -> EmojiClipsConfig:
    if isinstance(preset, EmojiClipsConfig):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}: use one of {sorted(PRESETS)} or pass an EmojiClipsConfig")
    changes = {k: v for k, v in dict(source=source, seed=seed, **overrides).items() if v is not None}
    return config.replace(**changes) if changes else config


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|\?", text.lower())


# ----------------------------------------------------------------------------------- rendering
_STATE: dict = {}  # set before forking the workers: (config, bank, backgrounds, devices)


def _job(job: tuple[int, int, int]) -> tuple[int, int, np.ndarray, list[dict]]:
    split_id, dev, n = job
    cfg, bank, bgs, devices = (_STATE[k] for k in ("config", "bank", "backgrounds", "devices"))
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(split_id, dev)))
    # The user's own content: one stream per device, so history, new and unseen clips share it.
    own = personal_sets(devices[dev], bank, bgs, cfg.size, cfg.personal_sprites, cfg.personal_scenes,
                        np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(98, dev))))
    frames, rows = render_device(devices[dev], n, bank, bgs, cfg.frames, cfg.size, cfg.sprite_sizes,
                                 cfg.max_sprites, cfg.questions_per_clip, rng, own, cfg.personal_share)
    return split_id, dev, frames, rows


def sprite_bank(config: EmojiClipsConfig, root: Path) -> SpriteBank:
    if config.source == "shapes":
        return shapes_bank(config.sprite_sizes)
    a = find_assets(root)
    return emoji_bank(a.gemojione, a.noto, a.symbola, config.sprite_sizes)


def _build(config: EmojiClipsConfig, root: Path, out: Path, progress: bool) -> EmojiClips:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.perf_counter()
    bank = sprite_bank(config, root)
    devices = make_devices(config.n_train_devices, config.n_unseen_devices, len(bank.styles), len(bank.categories),
                           config.category_alpha, config.qtype_alpha,
                           np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(99,))), bank.styles)
    _STATE.update(config=config, bank=bank, backgrounds=background_pool(config.size), devices=devices)
    train = [i for i, d in enumerate(devices) if d.split == "train"]
    unseen = [i for i, d in enumerate(devices) if d.split == "unseen"]
    plan = {0: [(d, config.history_clips) for d in train], 1: [(d, config.new_clips) for d in train],
            2: [(d, config.unseen_clips) for d in unseen]}
    jobs = [(s, d, n) for s in plan for d, n in plan[s]]
    q = config.questions_per_clip
    T, H = config.frames, config.size
    # each clip's frames once (rows point at their clip): clips of a split in plan order
    frames = {s: np.empty((sum(n for _, n in plan[s]), T, H, H, 3), np.uint8) for s in plan}
    offset = {(s, d): sum(n for dd, n in plan[s][: k]) for s in plan for k, (d, _) in enumerate(plan[s])}
    rows: dict[tuple[int, int], list[dict]] = {}

    def take(result):
        s, d, f, r = result
        o = offset[s, d]
        frames[s][o:o + len(f)] = f
        rows[s, d] = r

    with Progress(TextColumn(f"EmojiClips {config.name}/{config.source}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} device splits"), TimeElapsedColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("render", total=len(jobs))
        if config.workers > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(config.workers) as pool:
                for result in pool.imap_unordered(_job, sorted(jobs, key=lambda j: -j[2])):
                    take(result)
                    bar.advance(task)
        else:
            for job in jobs:
                take(_job(job))
                bar.advance(task)
    _STATE.clear()

    # ---- vocabularies: words of every text and sprite name; answers = top-V of the history
    ordered = {s: [r for d, _ in plan[s] for r in rows[s, d]] for s in plan}
    words = set()
    for text in [*bank.names, *bank.categories] + [t for s in plan for r in ordered[s] for t in
                                                     (r["question"], r["caption"])]:
        words.update(tokenize(text))
    vocab_words = [*SPECIALS, *sorted(words)]
    counts = Counter(r["answer"] for r in ordered[0])
    answers = [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][: config.answer_vocab]
    extra = sorted({c for s in plan for r in ordered[s] for c in r["candidates"]} - set(answers))
    vocab = Vocab(words=vocab_words, answers=answers, devices=[d.name for d in devices],
                  categories=list(bank.categories), qtypes=list(QTYPES), mc_answers=answers + extra,
                  styles=list(bank.styles))
    wid = {w: i for i, w in enumerate(vocab_words)}
    aid = {a: i for i, a in enumerate(answers)}
    mid = {a: i for i, a in enumerate(vocab.mc_answers)}

    def ids(text: str, length: int) -> list[int]:
        t = [1] + [wid.get(w, 3) for w in tokenize(text)][: length - 1]
        return t + [0] * (length - len(t))

    dev_dicts = [d.to_dict(bank.styles) for d in devices]
    splits = {}
    clip_base = 0
    for s, name in enumerate(SPLITS):
        r = ordered[s]
        dev_col = [d for d, n in plan[s] for _ in range(n * q)]
        clip_col, base = [], clip_base
        for d, n in plan[s]:
            clip_col += [base + row["clip"] for row in rows[s, d]]
            base += n
        clip_base = base
        clip_ids = torch.tensor(clip_col, dtype=torch.int64)
        splits[name] = ClipSet(
            frames=ClipView(torch.from_numpy(frames[s]), clip_ids - (clip_base - len(frames[s]))),
            question=torch.tensor([ids(x["question"], config.question_len) for x in r], dtype=torch.int64),
            answer=torch.tensor([aid.get(x["answer"], IGNORE) for x in r], dtype=torch.int64),
            answer_text=[x["answer"] for x in r],
            candidates=torch.tensor([[mid[c] for c in x["candidates"]] for x in r], dtype=torch.int64),
            mc_label=torch.tensor([x["mc_label"] for x in r], dtype=torch.int64),
            caption=torch.tensor([ids(x["caption"], config.caption_len) for x in r], dtype=torch.int64),
            device=torch.tensor(dev_col, dtype=torch.int64),
            category=torch.tensor([x["category"] for x in r], dtype=torch.int64),
            qtype=torch.tensor([x["qtype"] for x in r], dtype=torch.int64),
            clip_id=clip_ids,
            meta={"dataset": "emojiclips", "split": name, "preset": config.name, "source": config.source,
                  "seed": config.seed, "fingerprint": config.fingerprint()},
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, cs in splits.items():
        _save(cs, out / f"{name}.safetensors")
    (out / "vocab.json").write_text(vocab.to_json())
    (out / "devices.json").write_text(json.dumps(dev_dicts, indent=1))
    info = {"build_seconds": round(time.perf_counter() - t0, 2), "provenance": bank.provenance,
            "n_sprites": len(bank.names)}
    (out / "build.json").write_text(json.dumps(info, indent=1))
    # written last: its presence with the right fingerprint marks a complete build
    (out / "config.json").write_text(json.dumps({"format": _FORMAT, "fingerprint": config.fingerprint(),
                                                 "config": config.to_dict()}, indent=1))
    return EmojiClips(config, vocab, splits["history"], splits["new"], splits["unseen"], dev_dicts, out,
                      from_cache=False, info=info)


def _save(cs: ClipSet, path: Path) -> None:
    """``ClipSet.save`` with the safetensors header rewritten in sorted key order.

    safetensors writes its header from a hash map, so key order (and thus the file's bytes) vary
    between runs; sorting in place (same length) makes equal data give equal files.
    """
    cs.save(path)
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) <= n:
            f.seek(8)
            f.write(text + b" " * (n - len(text)))


def _cached(config: EmojiClipsConfig, out: Path) -> bool:
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return saved.get("format") == _FORMAT and saved.get("fingerprint") == config.fingerprint() and all(
        (out / f"{s}.safetensors").is_file() and ClipSet.clips_path(out / f"{s}.safetensors").is_file() for s in SPLITS)


def load(preset: str | EmojiClipsConfig = "quick", source: str | None = None, seed: int | None = 0,
         root: str | Path | None = None, progress: bool = True, rebuild: bool = False,
         **overrides) -> EmojiClips:
    """The EmojiClips splits of ``preset``: built once (seconds to minutes), then read from the cache.

    ``source=None`` keeps the preset's source; ``overrides`` replace config fields
    (e.g. ``workers=1``). ``root=None`` uses ``$PARAMCAST_DATA`` or ``./data``.
    """
    config = resolve_config(preset, source, seed, **overrides)
    root = data_root(root)
    out = dataset_dir(config, root)
    if rebuild or not _cached(config, out):
        return _build(config, root, out, progress)
    vocab = Vocab.from_json((out / "vocab.json").read_text())
    splits = {s: ClipSet.load(out / f"{s}.safetensors") for s in SPLITS}
    info = json.loads((out / "build.json").read_text()) if (out / "build.json").is_file() else {}
    return EmojiClips(config, vocab, splits["history"], splits["new"], splits["unseen"],
                      json.loads((out / "devices.json").read_text()), out, from_cache=True, info=info)
