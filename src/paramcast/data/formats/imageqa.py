"""Image VQA: VQAv2 (Goyal et al., CVPR 2017) and A-OKVQA (Schwenk et al., ECCV 2022). Images are one-frame clips.

Published formats read here:

- VQAv2: ``v2_OpenEnded_mscoco_{train,val}2014_questions.json`` = ``{"questions": [{"image_id",
  "question", "question_id"}], ...}`` and ``v2_mscoco_{train,val}2014_annotations.json`` =
  ``{"annotations": [{"question_id", "image_id", "question_type", "answer_type",
  "multiple_choice_answer", "answers": [{"answer", "answer_confidence", "answer_id"}] x 10}], ...}``.
  Images: ``{root}/{train,val}2014/COCO_{train,val}2014_<image_id:012d>.jpg``.
  ``answer`` is the class of ``multiple_choice_answer``; the 10 annotators' answers are kept in
  ``meta["direct_answers"]`` for the soft score (:func:`..accuracy.vqa_score`).
- A-OKVQA: ``aokvqa_v1p0_{train,val,test}.json`` = a list of ``{"split", "image_id", "question_id",
  "question", "choices": [4 str], "correct_choice_idx": int, "direct_answers": [10 str],
  "difficult_direct_answer": bool, "rationales": [3 str]}`` (the test split has no answers).
  Images are COCO 2017: ``{root}/{split}2017/<image_id:012d>.jpg`` (as ``get_coco_path`` in
  allenai/aokvqa). Multiple choice (MC): ``candidates[:, :4]`` index the 4 choices in
  ``Vocab.answers``; A-OKVQA has 4 choices, so ``candidates[:, 4]`` is IGNORE (mask it before
  taking the arg-max). Direct answer (DA): ``answer`` is the most frequent of the 10 direct answers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import torch

from paramcast.data.base import IGNORE, Vocab

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
    index_of,
    make_rows,
    normalise_answer,
    read_json,
    require_file,
)

__all__ = ["read_aokvqa", "read_vqav2"]


def _vqav2_split(root: Path, split: str) -> list[dict]:
    q = read_json(require_file(root, "vqav2", f"v2_OpenEnded_mscoco_{split}2014_questions.json",
                               f"annotations/v2_OpenEnded_mscoco_{split}2014_questions.json"))
    a = read_json(require_file(root, "vqav2", f"v2_mscoco_{split}2014_annotations.json",
                               f"annotations/v2_mscoco_{split}2014_annotations.json"))
    if "questions" not in q or "annotations" not in a:
        raise DatasetLayoutError(f"vqav2 {split}: expected {{'questions': [...]}} and {{'annotations': [...]}} "
                                 "(the official VQAv2 files)")
    by_qid = {x["question_id"]: x for x in a["annotations"]}
    rows = []
    for x in q["questions"]:
        ann = by_qid.get(x["question_id"])
        if ann is None:
            raise DatasetLayoutError(f"vqav2 {split}: question {x['question_id']} has no annotation")
        rows.append({"question": x["question"], "image_id": x["image_id"],
                     "answer": normalise_answer(ann["multiple_choice_answer"]),
                     "direct": [normalise_answer(y["answer"]) for y in ann["answers"]],
                     "answer_type": ann["answer_type"], "question_type": ann["question_type"]})
    return rows


def read_vqav2(root: str | Path, split: str = "train", *, vocab: Vocab | None = None, answer_vocab: int = 3129,
               max_words: int | None = 10000, question_len: int = 20) -> Annotations:
    """VQAv2 train/val. Answer classes: the top-V of all 10 annotator answers over training (V = 3129, ViLT's size)."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"vqav2: split {split!r} has no public answers; use 'train' or 'val'")
    train = _vqav2_split(root, "train")
    rows = train if split == "train" else _vqav2_split(root, split)
    if vocab is None:
        vocab = Vocab(words=build_word_vocab((r["question"] for r in train), max_words),
                      answers=build_answer_vocab((a for r in train for a in r["direct"]), answer_vocab),
                      devices=["all"], categories=sorted({r["answer_type"] for r in train}),
                      qtypes=sorted({r["question_type"] for r in train}))
    # types this split has and the vocabulary lacks get new indices after the known ones, in a copy: a
    # vocabulary passed in (the training split's, to read val) is never changed under its owner
    vocab = dataclasses.replace(vocab, **{
        attr: [*names, *sorted({r[field] for r in rows} - set(names))]
        for attr, field, names in (("categories", "answer_type", vocab.categories),
                                   ("qtypes", "question_type", vocab.qtypes))})
    clip_ids, clips = clip_index([str(r["image_id"]) for r in rows])
    answers = [r["answer"] for r in rows]
    out = make_rows(
        question=encode_text([r["question"] for r in rows], vocab.words, question_len),
        answer=answer_ids(answers, vocab.answers), answer_text=answers, caption=empty_text(len(rows)),
        clip_id=clip_ids, category=index_of([r["answer_type"] for r in rows], vocab.categories),
        qtype=index_of([r["question_type"] for r in rows], vocab.qtypes),
        meta={"dataset": "vqav2", "split": split, "task": "vqa", "clips": clips,
              "questions": [r["question"] for r in rows],
              "direct_answers": [r["direct"] for r in rows]})
    idir = find_dir(root, f"{split}2014", f"images/{split}2014")
    return Annotations(rows=out, vocab=vocab, kind="image",
                       media=[idir / f"COCO_{split}2014_{int(c):012d}.jpg" for c in clips],
                       layout=f"COCO 2014 images belong in {idir}/COCO_{split}2014_<image_id:012d>.jpg")


def _aokvqa_split(root: Path, split: str) -> list[dict]:
    data = read_json(require_file(root, "aokvqa", f"aokvqa_v1p0_{split}.json", f"aokvqa/aokvqa_v1p0_{split}.json"))
    if not isinstance(data, list) or (data and not {"question", "choices", "image_id"} <= set(data[0])):
        raise DatasetLayoutError(f"aokvqa {split}: expected a JSON list of {{'question', 'choices', 'image_id', ...}}")
    return data


def read_aokvqa(root: str | Path, split: str = "train", *, vocab: Vocab | None = None, answer_vocab: int = 2000,
                max_words: int | None = 10000, question_len: int = 20) -> Annotations:
    """A-OKVQA train/val/test (MC and DA).

    ``Vocab.answers`` = the top-V training direct answers, then every choice of the three splits
    that is not among them (so every candidate has a class; classes past V never occur as a
    training DA target). ``meta["answer_classes"]`` = V. Needs all three split files.
    """
    root = Path(root)
    if split not in ("train", "val", "test"):
        raise ValueError(f"aokvqa: split {split!r} does not exist; use 'train', 'val' or 'test'")
    splits = {s: _aokvqa_split(root, s) for s in ("train", "val", "test")}
    train, rows = splits["train"], splits[split]
    if vocab is None:
        top = build_answer_vocab((normalise_answer(a) for r in train for a in r.get("direct_answers", [])),
                                 answer_vocab)
        known = set(top)
        extra = []
        for s in ("train", "val", "test"):
            for r in splits[s]:
                for c in map(normalise_answer, r["choices"]):
                    if c not in known:
                        known.add(c)
                        extra.append(c)
        vocab = Vocab(words=build_word_vocab((r["question"] for r in train), max_words), answers=top + extra,
                      devices=["all"], categories=["regular", "difficult"], qtypes=["all"])
        answer_vocab = len(top)
    n = len(rows)
    da = [Counter(map(normalise_answer, r["direct_answers"])).most_common(1)[0][0] if r.get("direct_answers") else ""
          for r in rows]
    cand = torch.full((n, 5), IGNORE, dtype=torch.int64)
    for i, r in enumerate(rows):
        cand[i, : len(r["choices"])] = answer_ids([normalise_answer(c) for c in r["choices"]], vocab.answers)
    mc = torch.tensor([IGNORE if r.get("correct_choice_idx") is None else r["correct_choice_idx"] for r in rows],
                      dtype=torch.int64)
    answer = answer_ids(da, vocab.answers)
    answer[torch.tensor([d == "" for d in da], dtype=torch.bool)] = IGNORE
    clip_ids, clips = clip_index([str(r["image_id"]) for r in rows])
    out = make_rows(
        question=encode_text([r["question"] for r in rows], vocab.words, question_len), answer=answer,
        answer_text=da, caption=empty_text(n), clip_id=clip_ids, candidates=cand, mc_label=mc,
        category=torch.tensor([int(bool(r.get("difficult_direct_answer", False))) for r in rows]),
        qtype=torch.zeros(n, dtype=torch.int64),
        meta={"dataset": "aokvqa", "split": split, "task": "vqa", "clips": clips, "answer_classes": min(answer_vocab, len(vocab.answers)),
              "question_id": [r["question_id"] for r in rows], "questions": [r["question"] for r in rows],
              "direct_answers": [[normalise_answer(a) for a in r.get("direct_answers", [])] for r in rows]})
    idir = find_dir(root, f"{split}2017", f"coco/{split}2017")
    return Annotations(rows=out, vocab=vocab, kind="image", media=[idir / f"{int(c):012d}.jpg" for c in clips],
                       layout=f"COCO 2017 images belong in {idir}/<image_id:012d>.jpg")
