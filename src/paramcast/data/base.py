"""The in-memory form of a video-QA split, shared by every data source (EmojiClips, real datasets).

A :class:`ClipSet` is a struct of aligned tensors, one row per (clip, question). It is saved as one
safetensors file plus a JSON sidecar for the vocabularies, so a cached split loads without
unpickling anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

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

    frames: torch.Tensor       # (N, T, H, W, 3) uint8
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
        """Rows ``index`` (a bool mask or int64 indices)."""
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        kw = {name: getattr(self, name)[index] for name in self._TENSORS}
        return ClipSet(**kw, answer_text=[self.answer_text[i] for i in index.tolist()], meta=dict(self.meta))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({n: getattr(self, n).contiguous() for n in self._TENSORS}, str(path),
                  metadata={"answer_text": json.dumps(self.answer_text), "meta": json.dumps(self.meta)})

    @classmethod
    def load(cls, path: str | Path) -> ClipSet:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            md = f.metadata()
        tensors = load_file(str(path))
        return cls(**tensors, answer_text=json.loads(md["answer_text"]), meta=json.loads(md["meta"]))


