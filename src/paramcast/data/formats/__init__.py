"""Readers for real datasets in their published annotation formats, from a local root (nothing is downloaded).

    from paramcast.data.formats import load_dataset
    clips, vocab = load_dataset("msrvtt-qa", "/data/msrvtt", split="test", frames=8, size=64)

    ann = read_annotations("msrvtt-qa", "/data/msrvtt", split="test")   # annotations only, no decoding
    clips = ann.subset(ann.rows.qtype == 0).decode(frames=3, size=224, cache_dir="runs/cache")

Every reader returns the same :class:`~paramcast.data.base.ClipSet` conventions as EmojiClips.
The expected layout of each root is in ``docs/datasets.md``; a missing file raises
:class:`DatasetLayoutError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paramcast.data.base import ClipSet, Vocab

from ._common import Annotations, DatasetLayoutError, build_answer_vocab, build_word_vocab, tokenize
from .accuracy import vqa_score
from .backbones import load_local_backbones
from .benchmark import VideoQABenchmark, load_videoqa_benchmark
from .captions import read_coco_captions, read_nocaps
from .imageqa import read_aokvqa, read_vqav2
from .retrieval import read_msrvtt_retrieval
from .videoqa import read_msrvtt_qa, read_msvd_qa, read_tgif_frameqa

__all__ = ["DATASETS", "Annotations", "DatasetFormat", "DatasetLayoutError", "VideoQABenchmark",
           "build_answer_vocab", "build_word_vocab", "load_dataset", "load_local_backbones",
           "load_videoqa_benchmark", "read_annotations", "tokenize", "vqa_score"]


@dataclass(frozen=True)
class DatasetFormat:
    """One registered dataset: its reader, splits, task and default answer-vocabulary size."""

    read: Callable[..., Annotations]
    splits: tuple[str, ...]
    task: str                       # videoqa | retrieval | vqa | captioning
    answer_vocab: int | None        # default V (top-V training answers), None when the task has no answers


DATASETS: dict[str, DatasetFormat] = {
    "msrvtt-qa": DatasetFormat(read_msrvtt_qa, ("train", "val", "test"), "videoqa", 1500),
    "msvd-qa": DatasetFormat(read_msvd_qa, ("train", "val", "test"), "videoqa", 1000),
    "tgif-frameqa": DatasetFormat(read_tgif_frameqa, ("train", "test"), "videoqa", 1540),
    "msrvtt-retrieval": DatasetFormat(read_msrvtt_retrieval, ("train", "test"), "retrieval", None),
    "vqav2": DatasetFormat(read_vqav2, ("train", "val"), "vqa", 3129),
    "aokvqa": DatasetFormat(read_aokvqa, ("train", "val", "test"), "vqa", 2000),
    "coco-captions": DatasetFormat(read_coco_captions, ("train", "val"), "captioning", None),
    "nocaps": DatasetFormat(read_nocaps, ("val",), "captioning", None),
}


def _format(name: str) -> DatasetFormat:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}") from None


def read_annotations(name: str, root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                     answer_vocab: int | None = None, max_words: int | None = 10000, text_len: int | None = None,
                     limit: int | None = None) -> Annotations:
    """Annotations of one split, no frames decoded. See :func:`load_dataset` for the arguments."""
    fmt = _format(name)
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name}: data root {root} is not a directory (see docs/datasets.md)")
    if split not in fmt.splits:
        raise ValueError(f"{name}: split {split!r} does not exist; use one of {fmt.splits}")
    kw: dict = {"vocab": vocab, "max_words": max_words}
    if fmt.answer_vocab is not None:
        kw["answer_vocab"] = answer_vocab or fmt.answer_vocab
        if text_len:
            kw["question_len"] = text_len
    elif text_len:
        kw["caption_len"] = text_len
    ann = fmt.read(root, split, **kw)
    if limit is not None:
        import torch

        ann = ann.subset(torch.arange(min(limit, len(ann))))
    return ann


def load_dataset(name: str, root: str | Path, split: str = "train", frames: int = 8, size: int = 64, *,
                 vocab: Vocab | None = None, answer_vocab: int | None = None, max_words: int | None = 10000,
                 text_len: int | None = None, limit: int | None = None,
                 cache_dir: str | Path | None = None) -> tuple[ClipSet, Vocab]:
    """``(clips, vocab)`` of one split of a dataset in ``DATASETS``, frames decoded.

    name: a key of ``DATASETS``; root: the dataset's local directory (layout in docs/datasets.md).
    frames, size: T frames sampled uniformly per video, resized to size x size (images: T = 1).
    vocab: reuse a vocabulary (e.g. the training split's, or COCO's for nocaps); default: built from
    the training annotations, so every split of one root gets the same vocabulary.
    answer_vocab: V, the top-V training answers become classes (default per dataset: 1500
    MSRVTT-QA, 1000 MSVD-QA, 1540 TGIF-QA FrameQA). max_words caps the word vocabulary.
    text_len: question (QA) or caption (retrieval, captioning) length in tokens incl. [CLS]/[SEP].
    limit: keep the first ``limit`` rows (decode only their clips). cache_dir: decode each clip once
    into a memory-mapped clip store there (resumable, reused next time; see
    :meth:`Annotations.decode`); frames of rows are a :class:`~paramcast.data.store.ClipView`.
    """
    ann = read_annotations(name, root, split, vocab=vocab, answer_vocab=answer_vocab, max_words=max_words,
                           text_len=text_len, limit=limit)
    return ann.decode(frames=frames, size=size, cache_dir=cache_dir), ann.vocab
