"""The accuracy rules of the real datasets: filtered vs unfiltered QA accuracy and the VQA soft score."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from paramcast.data.base import IGNORE

__all__ = ["qa_accuracy", "vqa_score"]


def qa_accuracy(pred: torch.Tensor, answer: torch.Tensor) -> dict[str, float]:
    """Open-ended QA accuracy under both rules the seeds' tables mix.

    pred (N,) predicted class, answer (N,) true class or IGNORE (-1) when the true answer is outside
    the training answer vocabulary (All-in-One's top-V classes).

    - ``filtered``: IGNORE rows are dropped, accuracy over the rest (All-in-One's published numbers).
    - ``unfiltered``: IGNORE rows stay and count as wrong (no class can be right), accuracy over all N.

    ``kept`` is the fraction of rows not IGNORE, so unfiltered = filtered x kept.
    """
    pred, answer = pred.reshape(-1), answer.reshape(-1)
    if pred.shape != answer.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and answer {tuple(answer.shape)} must have the same length")
    n = answer.numel()
    keep = answer != IGNORE
    correct = ((pred == answer) & keep).sum().item()
    kept = int(keep.sum().item())
    return {"filtered": correct / kept if kept else 0.0, "unfiltered": correct / n if n else 0.0,
            "kept": kept / n if n else 0.0}


def vqa_score(pred: str, direct_answers: Sequence[str]) -> float:
    """VQA accuracy of one predicted answer against the annotators' answers (VQAv2, A-OKVQA DA).

    The official rule: for each of the 10 leave-one-annotator-out subsets of 9, min(1, #matches / 3);
    averaged over the subsets. With fewer answers the same leave-one-out average is taken. Answers
    are compared after lower-casing and whitespace folding (the official punctuation/number-word
    normalisation is not applied).
    """
    answers = [" ".join(a.lower().split()) for a in direct_answers]
    if not answers:
        raise ValueError("vqa_score needs at least one annotator answer")
    pred = " ".join(pred.lower().split())
    match = [a == pred for a in answers]
    total = sum(match)
    return sum(min(1.0, (total - m) / 3) for m in match) / len(answers)
