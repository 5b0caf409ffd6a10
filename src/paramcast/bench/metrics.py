"""Accuracy helpers for open-ended video QA (payload sizes: :func:`paramcast.wire.tensor_nbytes`),
multiple-choice scoring and retrieval recall.

Two accuracies (docs/design.md): *filtered* drops rows whose true answer is outside the answer
vocabulary (``answer == IGNORE``), as All-in-One's published numbers do; *unfiltered* keeps them
and counts them as wrong (no class can be right).
"""

from __future__ import annotations

import math

import torch

from paramcast.data.base import IGNORE

__all__ = ["accuracy", "accuracy_report", "mc_scores", "per_device_accuracy", "retrieval_ranks", "retrieval_recall"]


def accuracy(pred: torch.Tensor, answer: torch.Tensor, filtered: bool = True) -> float:
    """Share of rows with ``pred == answer``; ``filtered`` drops IGNORE rows first. NaN on no rows."""
    pred, answer = pred.flatten(), answer.flatten()
    if filtered:
        keep = answer != IGNORE
        pred, answer = pred[keep], answer[keep]
    if answer.numel() == 0:
        return math.nan
    return float((pred == answer).float().mean())


def per_device_accuracy(pred: torch.Tensor, answer: torch.Tensor, device: torch.Tensor,
                        filtered: bool = True) -> dict[int, float]:
    """``{device: accuracy}`` over the devices present in ``device``."""
    return {int(d): accuracy(pred[device == d], answer[device == d], filtered) for d in device.unique().tolist()}


def accuracy_report(pred: torch.Tensor, answer: torch.Tensor, device: torch.Tensor) -> dict:
    """Filtered, unfiltered, per-device (filtered) and worst-device accuracy of one split."""
    per_dev = per_device_accuracy(pred, answer, device, filtered=True)
    finite = [v for v in per_dev.values() if not math.isnan(v)]
    return {
        "filtered": accuracy(pred, answer, filtered=True),
        "unfiltered": accuracy(pred, answer, filtered=False),
        "worst_device": min(finite) if finite else math.nan,
        "mean_device": sum(finite) / len(finite) if finite else math.nan,
        "per_device": {str(k): v for k, v in per_dev.items()},
        "rows": int(answer.numel()),
        "rows_in_vocab": int((answer != IGNORE).sum()),
    }


def mc_scores(logits: torch.Tensor, candidates: int = 5) -> torch.Tensor:
    """Per-candidate scores from a pair head: ``(N·K, 2)`` match / no-match logits -> ``(N, K)``.

    A candidate's score is ``logit[1] - logit[0]`` (the log-odds of "this candidate is right"), i.e.
    one ``Linear(H, 1)`` logit; a ``(N·K, 1)`` head's logit is used as is. The prediction is the
    argmax over the K candidates (the first one on a tie, as ``torch.argmax``).
    """
    if logits.dim() != 2 or logits.shape[0] % candidates:
        raise ValueError(f"logits (N*{candidates}, 1 or 2) expected, got {tuple(logits.shape)}")
    score = logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits[:, 0]
    return score.view(-1, candidates)


def retrieval_ranks(sim: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """1-based rank of each query's best positive in its row of ``sim`` (Q, G).

    ``positive`` (Q, G) bool marks the gallery items that count as correct (a video's own caption and
    any identical caption). Tie rule, pessimistic and independent of gallery order: every negative
    whose score is *equal to or higher than* the best positive's is ranked ahead of it,
    ``rank = 1 + #{j negative : sim[q, j] >= max_{p positive} sim[q, p]}``. A query without a
    positive gets rank G + 1 (never retrieved).
    """
    if sim.shape != positive.shape or sim.dim() != 2:
        raise ValueError(f"sim and positive must both be (Q, G), got {tuple(sim.shape)} and {tuple(positive.shape)}")
    positive = positive.bool()
    best = sim.masked_fill(~positive, -torch.inf).amax(dim=1, keepdim=True)          # (Q, 1)
    ahead = ((sim >= best) & ~positive).sum(dim=1)
    return torch.where(positive.any(dim=1), ahead + 1, torch.full_like(ahead, sim.shape[1] + 1))


def retrieval_recall(sim: torch.Tensor, positive: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """``{K: share of queries whose best positive ranks <= K}`` (rows of ``sim`` are the queries)."""
    ranks = retrieval_ranks(sim, positive)
    return {k: float((ranks <= k).float().mean()) if ranks.numel() else math.nan for k in ks}
