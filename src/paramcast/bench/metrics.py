"""Accuracy helpers for open-ended video QA (payload sizes: :func:`paramcast.wire.tensor_nbytes`).

Two accuracies (DESIGN.md): *filtered* drops rows whose true answer is outside the answer
vocabulary (``answer == IGNORE``), as All-in-One's published numbers do; *unfiltered* keeps them
and counts them as wrong (no class can be right).
"""

from __future__ import annotations

import math

import torch

from paramcast.data.base import IGNORE

__all__ = ["accuracy", "accuracy_report", "per_device_accuracy"]


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
