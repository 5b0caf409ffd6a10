"""Open-ended video QA: MSRVTT-QA, MSVD-QA (Xu et al., MM 2017) and TGIF-QA FrameQA (Jang et al., CVPR 2017).

Published formats read here:

- MSRVTT-QA / MSVD-QA: ``train_qa.json``, ``val_qa.json``, ``test_qa.json``, each a JSON list of
  ``{"question": str, "answer": str, "video_id": int, "id": int}`` (MSRVTT-QA rows also carry
  ``"category_id"``, the MSR-VTT video category 0-19). A row may name its clip ``"video"`` instead
  of ``"video_id"`` (re-packaged copies). MSRVTT-QA's ``video_id`` N is the clip ``videoN.mp4``;
  MSVD-QA's ``video_id`` N is ``vidN`` in ``youtube_mapping.txt`` (lines ``<youtube clip> vidN``),
  whose clip is ``<youtube clip>.avi``. The same files are used by All-in-One and Just Ask.
- TGIF-QA FrameQA: ``Train_frameqa_question.tsv`` / ``Test_frameqa_question.tsv`` (the
  YunseokJANG/tgif-qa repository ships them as ``.csv``; both names are accepted), tab-separated with
  a header ``gif_name question answer type vid_id key description``; ``type`` 0/1/2/3 =
  object/number/color/location; clips are ``gifs/<gif_name>.gif`` (an ``.mp4`` conversion is used
  when present). FrameQA has no validation split.

Answer classes follow All-in-One: the top-V training answers (V = 1500 / 1000 / 1540); other
answers become IGNORE and count as wrong in unfiltered accuracy
(:func:`paramcast.bench.metrics.accuracy` with ``filtered=False``). A split read with a reused
vocabulary (val/test with the training split's, as
:func:`~paramcast.data.formats.benchmark.load_videoqa_benchmark` does) may hold a
category (MSRVTT-QA's ``category_id``) or question type the vocabulary lacks: its rows get category /
qtype IGNORE, never an error, and ``meta["unseen"]`` counts them with the out-of-class answers
(:func:`~paramcast.data.formats._common.unseen_labels`; categories are also named on stderr).
"""

from __future__ import annotations

import csv
from pathlib import Path

from paramcast.data.base import Vocab

from ._common import (
    Annotations,
    DatasetLayoutError,
    answer_ids,
    build_answer_vocab,
    build_word_vocab,
    clip_index,
    empty_text,
    encode_text,
    find_dir,
    find_file,
    first_word_qtype,
    index_of,
    make_rows,
    normalise_answer,
    read_json,
    require_file,
    unseen_labels,
)

__all__ = ["read_msrvtt_qa", "read_msvd_qa", "read_tgif_frameqa"]

QTYPES = ["what", "who", "how", "when", "where", "why", "which", "other"]
TGIF_TYPES = ["object", "number", "color", "location"]


def _qa_rows(dataset: str, root: Path, split: str, splits: tuple[str, ...], files: dict[str, tuple[str, ...]],
             load) -> tuple[list[dict], list[dict]]:
    """(training rows, rows of ``split``) as dicts with question/answer/clip/category/qtype."""
    if split not in splits:
        raise ValueError(f"{dataset}: split {split!r} does not exist; use one of {splits}")
    train = load(require_file(root, dataset, *files["train"]))
    rows = train if split == "train" else load(require_file(root, dataset, *files[split]))
    return train, rows


def _build(dataset: str, split: str, train: list[dict], rows: list[dict], media_of, *, kind: str,
           layout: str, categories: list[str], qtypes: list[str], vocab: Vocab | None, answer_vocab: int,
           max_words: int | None, question_len: int) -> Annotations:
    if vocab is None:
        vocab = Vocab(words=build_word_vocab((r["question"] for r in train), max_words),
                      answers=build_answer_vocab((r["answer"] for r in train), answer_vocab),
                      devices=["all"], categories=categories, qtypes=qtypes)
    clip_ids, clips = clip_index([r["clip"] for r in rows])
    answers = [r["answer"] for r in rows]
    cats, qtypes = [r["category"] for r in rows], [r["qtype"] for r in rows]
    out = make_rows(
        question=encode_text([r["question"] for r in rows], vocab.words, question_len),
        answer=answer_ids(answers, vocab.answers), answer_text=answers,
        caption=empty_text(len(rows)), clip_id=clip_ids,
        category=index_of(cats, vocab.categories), qtype=index_of(qtypes, vocab.qtypes),
        meta={"dataset": dataset, "split": split, "task": "videoqa", "clips": clips,
              "questions": [r["question"] for r in rows],
              "unseen": unseen_labels(dataset, split, (answers, vocab.answers),
                                      categories=(cats, vocab.categories), qtypes=(qtypes, vocab.qtypes))})
    return Annotations(rows=out, vocab=vocab, media=[media_of(c) for c in clips], kind=kind, layout=layout)


def _json_qa(path: Path, clip_of) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list) or (data and not {"question", "answer"} <= set(data[0])):
        raise DatasetLayoutError(f"{path}: expected a JSON list of {{'question', 'answer', 'video_id'}} rows "
                                 "(the MSRVTT-QA / MSVD-QA release format)")
    out = []
    for r in data:
        vid = r.get("video_id", r.get("video"))
        if vid is None:
            raise DatasetLayoutError(f"{path}: a row has neither 'video_id' nor 'video': {r}")
        cat = r.get("category_id")
        out.append({"question": r["question"], "answer": normalise_answer(r["answer"]), "clip": clip_of(vid),
                    "category": "all" if cat is None else str(cat), "qtype": first_word_qtype(r["question"])})
    return out


def _categories(train: list[dict], rows: list[dict]) -> list[str]:
    seen = {r["category"] for r in train} | {r["category"] for r in rows}
    return sorted(seen, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))


_QA_FILES = {s: (f"{s}_qa.json", f"annotations/{s}_qa.json") for s in ("train", "val", "test")}


def read_msrvtt_qa(root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                   answer_vocab: int = 1500, max_words: int | None = 10000, question_len: int = 20) -> Annotations:
    """MSRVTT-QA: ``{root}/{split}_qa.json`` and clips ``{root}/videos/all/videoN.mp4`` (or ``videos/``)."""
    root = Path(root)

    def clip_of(vid) -> str:
        return f"video{vid}" if isinstance(vid, int) or str(vid).isdigit() else str(vid)

    train, rows = _qa_rows("msrvtt-qa", root, split, ("train", "val", "test"), _QA_FILES,
                           lambda p: _json_qa(p, clip_of))
    vdir = find_dir(root, "videos/all", "videos")
    cats = vocab.categories if vocab is not None else _categories(train, rows)
    return _build("msrvtt-qa", split, train, rows, lambda c: vdir / f"{c}.mp4", kind="video",
                  layout=f"MSR-VTT clips belong in {vdir}/videoN.mp4", categories=cats, qtypes=QTYPES,
                  vocab=vocab, answer_vocab=answer_vocab, max_words=max_words, question_len=question_len)


def _youtube_mapping(root: Path) -> dict[str, str]:
    path = require_file(root, "msvd-qa", "youtube_mapping.txt", "annotations/youtube_mapping.txt")
    mapping = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            mapping[parts[1]] = parts[0]          # "vid1" -> "-4wsuPCjDBc_5_15"
    if not mapping:
        raise DatasetLayoutError(f"{path}: expected lines '<youtube clip> vidN' (the MSVD-QA release)")
    return mapping


def read_msvd_qa(root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                 answer_vocab: int = 1000, max_words: int | None = 10000, question_len: int = 20) -> Annotations:
    """MSVD-QA: ``{root}/{split}_qa.json``, ``{root}/youtube_mapping.txt`` and clips ``{root}/videos/<name>.avi``."""
    root = Path(root)
    mapping = _youtube_mapping(root)

    def clip_of(vid) -> str:
        key = f"vid{vid}" if isinstance(vid, int) or str(vid).isdigit() else str(vid)
        return mapping.get(key, key)

    train, rows = _qa_rows("msvd-qa", root, split, ("train", "val", "test"), _QA_FILES,
                           lambda p: _json_qa(p, clip_of))
    vdir = find_dir(root, "videos", "video", "YouTubeClips")

    def media_of(c: str) -> Path:
        return find_file(vdir, c, ".avi", ".mp4")

    return _build("msvd-qa", split, train, rows, media_of, kind="video",
                  layout=f"MSVD clips belong in {vdir}/<youtube clip>.avi", categories=["all"], qtypes=QTYPES,
                  vocab=vocab, answer_vocab=answer_vocab, max_words=max_words, question_len=question_len)


def _tgif_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"gif_name", "question", "answer", "type"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise DatasetLayoutError(f"{path}: expected a tab-separated header with {sorted(need)} "
                                     f"(the TGIF-QA FrameQA release), found {reader.fieldnames}")
        return [{"question": r["question"], "answer": normalise_answer(r["answer"]), "clip": r["gif_name"],
                 "category": TGIF_TYPES[int(r["type"])], "qtype": TGIF_TYPES[int(r["type"])]} for r in reader]


def read_tgif_frameqa(root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                      answer_vocab: int = 1540, max_words: int | None = 10000,
                      question_len: int = 20) -> Annotations:
    """TGIF-QA FrameQA: ``{root}/{Train,Test}_frameqa_question.tsv`` and clips ``{root}/gifs/<gif_name>.gif``."""
    root = Path(root)
    files = {s: (f"{s.title()}_frameqa_question.tsv", f"{s.title()}_frameqa_question.csv",
                 f"dataset/{s.title()}_frameqa_question.tsv", f"dataset/{s.title()}_frameqa_question.csv")
             for s in ("train", "test")}
    train, rows = _qa_rows("tgif-frameqa", root, split, ("train", "test"), files, _tgif_rows)
    gdir = find_dir(root, "gifs", "GIFs", "videos")

    def media_of(c: str) -> Path:
        return find_file(gdir, c, ".gif", ".mp4")

    return _build("tgif-frameqa", split, train, rows, media_of, kind="video",
                  layout=f"TGIF clips belong in {gdir}/<gif_name>.gif", categories=TGIF_TYPES, qtypes=TGIF_TYPES,
                  vocab=vocab, answer_vocab=answer_vocab, max_words=max_words, question_len=question_len)
