"""The VQA soft score of VQAv2 / A-OKVQA direct answers.

Open-ended QA accuracy (filtered vs unfiltered over IGNORE rows) is
:func:`paramcast.bench.metrics.accuracy`; this module adds only what the VQA datasets need beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["vqa_score"]


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
