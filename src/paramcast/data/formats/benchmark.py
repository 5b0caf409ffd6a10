"""A real open-ended video-QA dataset laid out as the benchmark's splits, with one device per video.

    from paramcast.data.formats.benchmark import load_videoqa_benchmark
    ds = load_videoqa_benchmark("msrvtt-qa", "/data/msrvtt", frames=8, size=64, cache_dir="runs/cache/clips")
    ds.history, ds.new, ds.unseen         # train, val (test when there is none), test

EmojiClips rows carry a device; real datasets have none. Here **a device is one video** (clip):
CDC-MMPG's device uploads one frame of the video it is looking at and the cloud generates a head
for that video (seed cdc-mmpg §1: "ADR selects the first frame of each video as the AnchorFrame"),
and every question about that video is answered with the generated head. ``ClipSet.device`` is
therefore a video index, unique across the three splits (train videos first, then val, then test),
and ``Vocab.devices[d]`` is ``"<split>/<original clip id>"``.

Split roles: ``history`` = train (what the cloud trains on); ``new`` = val when the dataset has
one, else test; ``unseen`` = test. Every video of new/unseen is unseen by the cloud; the two
names only keep the result layout of EmojiClips.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from paramcast.data.base import ClipSet, Vocab

__all__ = ["VideoQABenchmark", "load_videoqa_benchmark", "videoqa_datasets"]

ROLES = ("history", "new", "unseen")


def videoqa_datasets() -> list[str]:
    """Names in ``DATASETS`` whose task is open-ended video QA (what the video-QA benchmark can run)."""
    from . import DATASETS

    return [n for n, f in DATASETS.items() if f.task == "videoqa"]


@dataclass
class VideoQABenchmark:
    """``history`` / ``new`` / ``unseen`` ClipSets of one real dataset; ``device`` = video index."""

    name: str                   # key of DATASETS, e.g. "msrvtt-qa"
    root: Path
    history: ClipSet
    new: ClipSet
    unseen: ClipSet
    vocab: Vocab                # devices: one "<split>/<clip>" name per video of every split read
    splits: dict[str, str]      # role -> dataset split, e.g. {"history": "train", "new": "val", "unseen": "test"}
    frames: int
    size: int
    limit: int                  # rows kept per split (0 = all)
    fingerprint: str            # hash of everything that changes the rows (cache keys use it)

    def split(self, role: str) -> ClipSet:
        if role not in ROLES:
            raise KeyError(f"unknown split {role!r}; use one of {ROLES}")
        return getattr(self, role)


def _digest(clips: ClipSet) -> str:
    h = hashlib.sha256()
    for t in (clips.clip_id, clips.answer, clips.question):
        h.update(t.contiguous().numpy().tobytes())
    h.update(json.dumps(clips.meta.get("clips", [])).encode())
    return h.hexdigest()[:16]


def load_videoqa_benchmark(name: str, root: str | Path, frames: int = 8, size: int = 64, limit: int = 0,
                           cache_dir: str | Path | None = None) -> VideoQABenchmark:
    """Read and decode train / (val) / test of an open-ended video-QA dataset (see the module docstring).

    limit: keep the first ``limit`` rows of each split (0 = all), for quick trials. cache_dir: decoded
    clips are stored there and reused (:meth:`Annotations.decode`).
    """
    from . import DATASETS, load_dataset

    name = name.lower()
    if name not in videoqa_datasets():
        raise ValueError(f"{name!r} is not an open-ended video-QA dataset; use one of {videoqa_datasets()}")
    root = Path(root)
    fmt = DATASETS[name]
    splits = {"history": "train", "new": "val" if "val" in fmt.splits else "test", "unseen": "test"}
    loaded: dict[str, ClipSet] = {}
    vocab: Vocab | None = None
    for split in dict.fromkeys(splits.values()):         # train first: its vocabulary serves every split
        loaded[split], vocab = load_dataset(name, root, split, frames, size, vocab=vocab, limit=limit or None,
                                            cache_dir=cache_dir)
    devices: list[str] = []
    for split, clips in loaded.items():
        # clip_id indexes meta["clips"] (every clip of the split, also those a limit dropped)
        clips.device = clips.clip_id + len(devices)
        devices += [f"{split}/{c}" for c in clips.meta["clips"]]
    vocab = replace(vocab, devices=devices)
    key = {"name": name, "root": str(root.resolve()), "frames": frames, "size": size, "limit": limit,
           "splits": splits, "answers": vocab.answers, "words": len(vocab.words),
           "rows": {s: [len(c), _digest(c)] for s, c in loaded.items()}}
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return VideoQABenchmark(name=name, root=root, vocab=vocab, splits=splits, frames=frames, size=size, limit=limit,
                            fingerprint=fingerprint, **{role: loaded[split] for role, split in splits.items()})
