"""Video-text retrieval: MSR-VTT (Xu et al., CVPR 2016) with the 1k-A test split (JSFusion, Yu et al. 2018).

Published formats read here:

- ``MSRVTT_data.json``: ``{"info", "videos": [{"video_id": "video0", "category": int, "split":
  "train" | "validate" | "test", "id", "url", "start time", "end time"}], "sentences": [{"caption": str,
  "video_id": "video0", "sen_id": int}]}`` (the MSR-VTT 10K release; ~20 captions per clip).
- ``MSRVTT_JSFUSION_test.csv``: comma-separated with header ``key,vid_key,video_id,sentence`` (some
  copies add a leading unnamed index column), 1,000 rows, one caption per test clip, as used by
  CLIP4Clip, All-in-One and most retrieval papers.

Splits: ``test`` = the 1k-A rows; ``train`` = every caption of every clip outside 1k-A (the "9k"
training split). Row i's caption describes clip ``clip_id[i]``; ``question`` is empty ([CLS] [SEP])
and ``answer`` is IGNORE. Clips are ``{root}/videos/all/videoN.mp4`` as for MSRVTT-QA.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from paramcast.data.base import IGNORE, Vocab

from ._common import (
    Annotations,
    DatasetLayoutError,
    build_word_vocab,
    clip_index,
    empty_text,
    encode_text,
    find_dir,
    index_of,
    make_rows,
    read_json,
    require_file,
)

__all__ = ["read_msrvtt_retrieval"]


def _test_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"video_id", "sentence"} <= set(reader.fieldnames):
            raise DatasetLayoutError(f"{path}: expected a CSV header with 'video_id' and 'sentence' "
                                     f"(MSRVTT_JSFUSION_test.csv), found {reader.fieldnames}")
        return [(r["video_id"], r["sentence"]) for r in reader]


def read_msrvtt_retrieval(root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                          max_words: int | None = 10000, caption_len: int = 40, **_: object) -> Annotations:
    """MSR-VTT retrieval rows: ``{root}/MSRVTT_data.json`` + ``{root}/MSRVTT_JSFUSION_test.csv``."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"msrvtt-retrieval: split {split!r} does not exist; use 'train' or 'test' (1k-A)")
    data = read_json(require_file(root, "msrvtt-retrieval", "MSRVTT_data.json", "annotation/MSRVTT_data.json",
                                  "msrvtt_data/MSRVTT_data.json"))
    if not {"videos", "sentences"} <= set(data):
        raise DatasetLayoutError("msrvtt-retrieval: MSRVTT_data.json must hold 'videos' and 'sentences'")
    test = _test_rows(require_file(root, "msrvtt-retrieval", "MSRVTT_JSFUSION_test.csv",
                                   "annotation/MSRVTT_JSFUSION_test.csv", "msrvtt_data/MSRVTT_JSFUSION_test.csv"))
    test_videos = {v for v, _ in test}
    train = [(s["video_id"], s["caption"]) for s in data["sentences"] if s["video_id"] not in test_videos]
    category = {v["video_id"]: str(v.get("category", "all")) for v in data["videos"]}
    if vocab is None:
        cats = sorted(set(category.values()) | {"all"}, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
        vocab = Vocab(words=build_word_vocab((c for _, c in train), max_words), answers=[], devices=["all"],
                      categories=cats, qtypes=["retrieval"])
    rows = train if split == "train" else test
    clip_ids, clips = clip_index([v for v, _ in rows])
    n = len(rows)
    vdir = find_dir(root, "videos/all", "videos")
    out = make_rows(
        question=empty_text(n), answer=torch.full((n,), IGNORE, dtype=torch.int64), answer_text=[""] * n,
        caption=encode_text([c for _, c in rows], vocab.words, caption_len), clip_id=clip_ids,
        category=index_of([category.get(v, "all") for v, _ in rows], vocab.categories),
        qtype=torch.zeros(n, dtype=torch.int64),
        meta={"dataset": "msrvtt-retrieval", "split": split, "task": "retrieval", "clips": clips,
              "captions": [c for _, c in rows]})
    return Annotations(rows=out, vocab=vocab, media=[vdir / f"{c}.mp4" for c in clips], kind="video",
                       layout=f"MSR-VTT clips belong in {vdir}/videoN.mp4")
