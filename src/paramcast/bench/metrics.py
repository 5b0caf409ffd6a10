"""Accuracy helpers for open-ended video QA, and the one payload-size formula every report uses.

Two accuracies (DESIGN.md): *filtered* drops rows whose true answer is outside the answer
vocabulary (``answer == IGNORE``), as All-in-One's published numbers do; *unfiltered* keeps them
and counts them as wrong (no class can be right).
"""

from __future__ import annotations

import math

import torch

from paramcast.data.base import IGNORE

__all__ = ["accuracy", "accuracy_report", "head_payload_bytes", "per_device_accuracy", "tensor_bytes",
           "upload_payload_bytes"]


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


def tensor_bytes(*shapes: tuple[int, ...], bytes_per_value: int = 4) -> int:
    """Bytes of fp32 (by default) tensors of the given shapes: the seeds' payload sizes."""
    return sum(math.prod(s) * bytes_per_value for s in shapes)


def upload_payload_bytes(feature_dim: int, frames: int = 1) -> int:
    """Uplink of CDC-MMPG: ``frames`` frame features of width C (192 fp32 -> 768 B = 0.75 KB)."""
    return tensor_bytes((frames, feature_dim))


def head_payload_bytes(num_answers: int, head_in: int) -> int:
    """Downlink of a generated ``head_in -> num_answers`` layer: (H + 1) · V fp32 values."""
    return tensor_bytes((num_answers, head_in), (num_answers,))
