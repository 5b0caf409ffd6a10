"""Device side of ``POST /v1/history``: labelled samples as one safetensors file.

The format (specified in docs/service.md, read strictly by the cloud): tensors ``features`` (N, C)
float32, ``labels`` (N,) int64, optional ``question`` (N, L) int64; ``__metadata__`` holds
``schema`` = ``paramcast.history/1``, ``device_id``, ``task`` and ``sha256`` over the tensors
(name, dtype, shape, bytes, in name order).
"""

from __future__ import annotations

import hashlib
import json

import torch
from safetensors.torch import save

__all__ = ["SCHEMA", "encode_history"]

SCHEMA = "paramcast.history/1"


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def encode_history(device_id: str, task: str, features: torch.Tensor, labels: torch.Tensor,
                   question: torch.Tensor | None = None) -> bytes:
    """Body for ``POST /v1/history``: features (N, C), labels (N,), question (N, L) or None."""
    tensors = {"features": features.detach().to(torch.float32).contiguous(),
               "labels": labels.detach().to(torch.int64).contiguous()}
    if question is not None:
        tensors["question"] = question.detach().to(torch.int64).contiguous()
    meta = {"schema": SCHEMA, "device_id": device_id, "task": task, "sha256": _digest(tensors)}
    return save(tensors, metadata=meta)
