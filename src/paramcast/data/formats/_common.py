"""What every reader shares: layout errors, tokenising, vocabularies, and lazy :class:`Annotations`.

A reader parses a dataset's published annotation files into :class:`Annotations`: every tensor of a
:class:`~paramcast.data.base.ClipSet` except the frames, plus the path of each clip's media file.
Frames are decoded only by :meth:`Annotations.decode` (once per clip, optionally cached as
safetensors), so a reader can list a 240k-question split without touching a video.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from paramcast.data.base import IGNORE, ClipSet, Vocab

__all__ = ["Annotations", "DatasetLayoutError", "SPECIALS", "build_answer_vocab", "build_word_vocab", "find_file",
           "encode_text", "tokenize"]

#: The four special words at the start of every word vocabulary (ids 0..3).
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
PAD, CLS, SEP, UNK = range(4)


class DatasetLayoutError(FileNotFoundError):
    """A dataset root lacks a file the reader needs; the message names it and the expected layout."""


def require_file(root: Path, dataset: str, *candidates: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that exists, else a :class:`DatasetLayoutError`."""
    for c in candidates:
        if (root / c).is_file():
            return root / c
    tried = ", ".join(str(root / c) for c in candidates)
    raise DatasetLayoutError(f"{dataset}: missing {candidates[0]!r} under {root} (looked for: {tried}). "
                             f"See docs/datasets.md for the expected layout of a {dataset} root.")


def find_dir(root: Path, *candidates: str) -> Path:
    """The first existing directory among ``candidates``; the first one when none exists yet.

    Media directories are only checked when frames are decoded, so annotations can be read alone.
    """
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return root / candidates[0]


def find_file(directory: Path, stem: str, *exts: str) -> Path:
    """The first existing ``directory/stem<ext>`` among ``exts``; the first one when none exists (the
    decoder then names it in its error)."""
    for ext in exts:
        if (directory / f"{stem}{ext}").is_file():
            return directory / f"{stem}{ext}"
    return directory / f"{stem}{exts[0]}"


def read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- text ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case, split words from punctuation ("what's this?" -> what ' s this ?)."""
    return _TOKEN.findall(text.lower())


def build_word_vocab(texts: Iterable[str], max_words: int | None = None) -> list[str]:
    """SPECIALS then the words of ``texts``, most frequent first, at most ``max_words`` in all."""
    counts = Counter(w for t in texts for w in tokenize(t))
    keep = None if max_words is None else max(0, max_words - len(SPECIALS))
    return list(SPECIALS) + [w for w, _ in counts.most_common(keep) if w not in SPECIALS]


def build_answer_vocab(answers: Iterable[str], top: int) -> list[str]:
    """The ``top`` most frequent training answers, most frequent first (All-in-One's answer classes).

    Ties keep first-seen order, so the vocabulary is a function of the annotation file alone.
    Answers outside it become :data:`~paramcast.data.base.IGNORE` (see :func:`answer_ids`).
    """
    if top < 1:
        raise ValueError(f"answer vocabulary size {top}: use >= 1")
    return [a for a, _ in Counter(answers).most_common(top)]


def normalise_answer(text: str) -> str:
    return " ".join(str(text).lower().split())


def answer_ids(answers: Sequence[str], vocab: Sequence[str]) -> torch.Tensor:
    """(N,) int64 class of each answer, IGNORE for answers outside ``vocab``."""
    index = {a: i for i, a in enumerate(vocab)}
    return torch.tensor([index.get(a, IGNORE) for a in answers], dtype=torch.int64)


def encode_text(texts: Sequence[str], words: Sequence[str], length: int) -> torch.Tensor:
    """(N, length) int64: [CLS] word ids [SEP], truncated to ``length``, padded with [PAD] = 0."""
    if length < 2:
        raise ValueError(f"text length {length}: use >= 2 ([CLS] and [SEP])")
    index = {w: i for i, w in enumerate(words)}
    out = torch.zeros(len(texts), length, dtype=torch.int64)
    for r, t in enumerate(texts):
        ids = [CLS] + [index.get(w, UNK) for w in tokenize(t)][: length - 2] + [SEP]
        out[r, : len(ids)] = torch.tensor(ids)
    return out


def first_word_qtype(question: str) -> str:
    """Question type by its wh-word (the usual MSRVTT-QA / MSVD-QA breakdown)."""
    words = tokenize(question)
    for w in words[:3]:
        if w in ("what", "who", "how", "when", "where", "why", "which"):
            return w
    return "other"


def index_of(values: Sequence[str], names: list[str]) -> torch.Tensor:
    """(N,) int64 index of each value in ``names`` (names must already hold every value)."""
    pos = {n: i for i, n in enumerate(names)}
    return torch.tensor([pos[v] for v in values], dtype=torch.int64)


# --- lazy annotations ------------------------------------------------------------------------
@dataclass
class Annotations:
    """One split's rows without frames; ``media[clip_id]`` is the file holding each clip.

    ``rows`` is a ClipSet whose ``frames`` is an empty (N, 0, 0, 0, 3) placeholder until
    :meth:`decode` fills it. ``kind`` is "video" (sampled to T frames) or "image" (T = 1).
    """

    rows: ClipSet
    vocab: Vocab
    media: list[Path]
    kind: str
    layout: str          # one line on where media files belong, quoted when one is missing

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: torch.Tensor) -> Annotations:
        """Rows ``index`` (mask or indices), e.g. to decode only part of a large split."""
        return replace(self, rows=self.rows.subset(index))

    def clip_frames(self, clip_id: int, frames: int = 8, size: int = 64) -> np.ndarray:
        """Frames of one clip, decoded now: (T, H, W, 3) uint8 (T = 1 for images)."""
        from paramcast.data.video import read_image, read_video

        path = self.media[clip_id]
        if not path.is_file():
            raise DatasetLayoutError(f"{self.rows.meta.get('dataset', 'dataset')}: media file {path} is missing "
                                     f"({self.layout}; see docs/datasets.md)")
        return read_video(path, frames, size) if self.kind == "video" else read_image(path, size)

    def decode(self, frames: int = 8, size: int = 64, cache_dir: str | Path | None = None) -> ClipSet:
        """The ClipSet with frames: each distinct clip decoded once, then gathered per row.

        With ``cache_dir``, the decoded clips are stored as one safetensors file keyed by the
        dataset, split, T, size and the clip list, and read back on the next call.
        """
        t = frames if self.kind == "video" else 1
        clips = torch.unique(self.rows.clip_id)                                  # (U,)
        cache = None
        if cache_dir is not None:
            key = hashlib.sha256(" ".join(str(self.media[c]) for c in clips.tolist()).encode()).hexdigest()[:12]
            m = self.rows.meta
            cache = Path(cache_dir) / f"{m.get('dataset', 'data')}-{m.get('split', 'split')}-{t}x{size}-{key}.safetensors"
        if cache is not None and cache.is_file():
            from safetensors.torch import load_file

            stored = load_file(str(cache))
            clips, video = stored["clip_id"], stored["frames"]
        else:
            video = torch.from_numpy(np.stack([self.clip_frames(c, t, size) for c in clips.tolist()]))
            if cache is not None:
                from safetensors.torch import save_file

                cache.parent.mkdir(parents=True, exist_ok=True)
                save_file({"clip_id": clips, "frames": video.contiguous()}, str(cache))
        row_to_clip = torch.searchsorted(clips, self.rows.clip_id)              # (N,) into clips
        return replace(self.rows, frames=video[row_to_clip])                    # (N, T, H, W, 3)


def make_rows(*, question: torch.Tensor, answer: torch.Tensor, answer_text: list[str],
              caption: torch.Tensor, clip_id: Sequence[int], category: torch.Tensor, qtype: torch.Tensor,
              device: torch.Tensor | None = None, candidates: torch.Tensor | None = None,
              mc_label: torch.Tensor | None = None, meta: dict) -> ClipSet:
    """A frameless ClipSet; absent multiple-choice fields are IGNORE, absent devices are device 0."""
    n = len(answer_text)
    return ClipSet(
        frames=torch.zeros(n, 0, 0, 0, 3, dtype=torch.uint8),
        question=question, answer=answer, answer_text=answer_text,
        candidates=candidates if candidates is not None else torch.full((n, 5), IGNORE, dtype=torch.int64),
        mc_label=mc_label if mc_label is not None else torch.full((n,), IGNORE, dtype=torch.int64),
        caption=caption,
        device=device if device is not None else torch.zeros(n, dtype=torch.int64),
        category=category, qtype=qtype,
        clip_id=torch.as_tensor(list(clip_id), dtype=torch.int64).reshape(n),
        meta=meta)


def empty_text(n: int) -> torch.Tensor:
    """(n, 2) [CLS] [SEP]: the text field of a task that has none (e.g. the question of a caption set)."""
    out = torch.zeros(n, 2, dtype=torch.int64)
    out[:, 0], out[:, 1] = CLS, SEP
    return out


def clip_index(keys: Sequence[str]) -> tuple[list[int], list[str]]:
    """Dense clip ids for row keys (first-seen order) and the distinct keys, one per clip."""
    ids: dict[str, int] = {}
    out = [ids.setdefault(k, len(ids)) for k in keys]
    return out, list(ids)
