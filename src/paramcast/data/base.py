"""A video-QA split, shared by every data source (EmojiClips, real datasets).

A :class:`ClipSet` is a struct of aligned tensors, one row per (clip, question). The frames are
stored **once per clip**: ``frames`` is a :class:`~paramcast.data.store.ClipView` (rows pointing
at a memory-mapped per-clip store) or, for small hand-built sets, a plain (N, T, H, W, 3) tensor.
On disk a split is two files: ``<name>.safetensors`` with the row tensors (small integer tensors
in the narrowest integer dtype that holds them, read back as int64) plus ``clip_row`` (N,), the
row's clip in the store, and ``<name>.clips.npy``, the (U, T, H, W, 3) uint8 clip store
(memory-mapped on load, see :mod:`paramcast.data.store`). Nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from paramcast.data.store import ClipView, NpyWriter, open_npy, take_rows

__all__ = ["IGNORE", "ClipSet", "Vocab"]

#: Label of an answer outside the training answer vocabulary (counts as wrong, unfiltered).
IGNORE = -1


@dataclass
class Vocab:
    """Vocabularies of one dataset: question/caption words and answers."""

    words: list[str]      # index 0 = "[PAD]", 1 = "[CLS]", 2 = "[SEP]", 3 = "[UNK]"
    answers: list[str]    # answer classes, most frequent first (All-in-One keeps the top V)
    devices: list[str]    # device (domain) names, index = ClipSet.device
    categories: list[str] # sprite categories, index = ClipSet.category
    qtypes: list[str]     # question types, index = ClipSet.qtype
    mc_answers: list[str] = field(default_factory=list)  # strings indexed by ClipSet.candidates:
                          #   answers first (same indices), then candidates outside the vocabulary
    styles: list[str] = field(default_factory=list)      # art styles of the devices' sprites

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        return cls(**json.loads(text))


@dataclass
class ClipSet:
    """Aligned tensors, N rows. Frames are uint8 RGB, channels last, as stored on disk."""

    frames: torch.Tensor | ClipView  # (N, T, H, W, 3) uint8; a ClipView: rows -> per-clip store
    question: torch.Tensor     # (N, Lq) int64 word ids, 0 = pad, starts with [CLS]
    answer: torch.Tensor       # (N,) int64 answer class, IGNORE (-1) when outside the vocabulary
    answer_text: list[str]     # (N,) the true answer as text (kept for unfiltered accuracy)
    candidates: torch.Tensor   # (N, 5) int64 multiple-choice candidate answers (word-id sequences
                               #   are built from Vocab.answers); column mc_label is correct
    mc_label: torch.Tensor     # (N,) int64 in [0, 5)
    caption: torch.Tensor      # (N, Lc) int64 word ids of the clip's caption, 0 = pad
    device: torch.Tensor       # (N,) int64 device index into Vocab.devices
    category: torch.Tensor     # (N,) int64 category of the clip's main sprite
    qtype: torch.Tensor        # (N,) int64 question type
    clip_id: torch.Tensor      # (N,) int64 id of the clip (several questions may share a clip)
    meta: dict = field(default_factory=dict)

    _TENSORS = ("frames", "question", "answer", "candidates", "mc_label", "caption", "device",
                "category", "qtype", "clip_id")

    def __len__(self) -> int:
        return int(self.answer.shape[0])

    def subset(self, index: torch.Tensor) -> ClipSet:
        """Rows ``index`` (a bool mask or int64 indices); the frames stay a view (nothing read)."""
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        kw = {name: take_rows(getattr(self, name), index) for name in self._TENSORS}
        return ClipSet(**kw, answer_text=[self.answer_text[i] for i in index.tolist()], meta=dict(self.meta))

    @staticmethod
    def clips_path(path: str | Path) -> Path:
        """The clip store beside a split file: ``history.safetensors`` -> ``history.clips.npy``."""
        path = Path(path)
        return path.with_name(path.name.removesuffix(".safetensors") + ".clips.npy")

    def save(self, path: str | Path, chunk: int = 256) -> None:
        """Rows to ``path`` (safetensors), each distinct clip's frames once to :meth:`clips_path`.

        Plain-tensor frames are deduplicated by ``clip_id`` when every row of a clip holds the same
        frames (else one store entry per row); a view writes the clips it uses, ``chunk`` at a time.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        store, index = _per_clip(self.frames, self.clip_id)
        used, row_clip = torch.unique(index, return_inverse=True)
        with NpyWriter(self.clips_path(path), (len(used), *store.shape[1:]), np.uint8) as w:
            for s in range(0, len(used), chunk):
                w.write(s, store[used[s: s + chunk]].numpy())
        tensors = {n: _narrow(getattr(self, n)) for n in self._TENSORS if n != "frames"}
        tensors["clip_row"] = _narrow(row_clip)
        save_file(tensors, str(path),
                  metadata={"answer_text": json.dumps(self.answer_text), "meta": json.dumps(self.meta)})

    @classmethod
    def load(cls, path: str | Path) -> ClipSet:
        """Rows read, frames memory-mapped (a :class:`ClipView`; nothing of the clip store is read)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            md = f.metadata()
        tensors = {n: t.to(torch.int64) if n != "frames" else t for n, t in load_file(str(path)).items()}
        if "frames" not in tensors:  # the per-row layout of older files is still read
            store, mapping = open_npy(cls.clips_path(path))
            tensors["frames"] = ClipView(store, tensors.pop("clip_row"), mapping)
        return cls(**tensors, answer_text=json.loads(md["answer_text"]), meta=json.loads(md["meta"]))


def _per_clip(frames: torch.Tensor | ClipView, clip_id: torch.Tensor) -> tuple[torch.Tensor | ClipView, torch.Tensor]:
    """(store, index) with ``frames[i] == store[index[i]]``: a view's own, or a tensor deduplicated by clip."""
    if isinstance(frames, ClipView):
        return frames.store, frames.index
    n = frames.shape[0]
    uniq, inv = torch.unique(clip_id, return_inverse=True)
    first = torch.full((len(uniq),), n, dtype=torch.int64).scatter_reduce_(0, inv, torch.arange(n), reduce="amin")
    if len(uniq) < n and torch.equal(frames[first][inv], frames):
        return frames[first], inv
    return frames, torch.arange(n)


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """An int64 tensor in the narrowest integer dtype holding its values (read back as int64)."""
    t = t.contiguous()
    if t.dtype != torch.int64 or t.numel() == 0:
        return t
    lo, hi = int(t.min()), int(t.max())
    for dt in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return t.to(dt)
    return t
