"""The ``POST /v1/history`` body: a device's labelled samples as one safetensors file.

Tensors (N rows each, N >= 1):

* ``features`` (N, C) float32 — what the device's frozen encoder produced (one anchor-frame feature
  per sample, as in an :class:`~paramcast.types.Upload`);
* ``labels``   (N,)  int64   — answer class, ``-1`` (``IGNORE``) when outside the vocabulary;
* ``question`` (N, L) int64  — optional word ids of the question, 0 = pad.

The safetensors ``__metadata__`` holds ``schema`` (``paramcast.history/1``), ``device_id``, ``task``
and ``sha256``: the digest of :func:`digest` over the tensors. Nothing else is accepted. The device
client writes it with :func:`encode_history`, the service reads it with :func:`decode_history`, strictly.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = ["SCHEMA", "HistoryBatch", "HistoryError", "decode_history", "digest", "encode_history"]

SCHEMA = "paramcast.history/1"
_SPEC = {"features": (torch.float32, 2), "labels": (torch.int64, 1), "question": (torch.int64, 2)}
_REQUIRED = ("features", "labels")
_META_KEYS = {"schema", "device_id", "task", "sha256"}


class HistoryError(ValueError):
    """A history body the service refuses; the message says what is wrong."""


@dataclass(frozen=True)
class HistoryBatch:
    device_id: str
    task: str
    tensors: dict[str, torch.Tensor]  # features (N, C) float32, labels (N,), question (N, L)?

    def __len__(self) -> int:
        return int(self.tensors["labels"].shape[0])


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over name, dtype, shape and little-endian bytes of every tensor, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
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
    meta = {"schema": SCHEMA, "device_id": device_id, "task": task, "sha256": digest(tensors)}
    return st_save(tensors, metadata=meta)


def _header(data: bytes) -> dict:
    if len(data) < 8:
        raise HistoryError("body is shorter than a safetensors header (8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 1 << 20:
        raise HistoryError(f"safetensors header length {n} does not fit the {len(data)}-byte body")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HistoryError(f"safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise HistoryError("safetensors header must be a JSON object")
    return header


def decode_history(data: bytes, *, max_rows: int = 4096, feature_dim: int | None = None) -> HistoryBatch:
    """Parse and validate a history body; raise :class:`HistoryError` on anything unexpected."""
    meta = _header(data).get("__metadata__")
    if not isinstance(meta, dict) or set(meta) != _META_KEYS:
        raise HistoryError(f"safetensors __metadata__ must have exactly the keys {sorted(_META_KEYS)}")
    if meta["schema"] != SCHEMA:
        raise HistoryError(f"schema {meta['schema']!r} is not supported; expected {SCHEMA!r}")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type for every malformation
        raise HistoryError(f"not a valid safetensors file: {exc}") from None
    unknown = set(tensors) - set(_SPEC)
    missing = set(_REQUIRED) - set(tensors)
    if unknown or missing:
        raise HistoryError(f"tensors must be {sorted(_REQUIRED)} (+ optional 'question'); "
                           f"unknown {sorted(unknown)}, missing {sorted(missing)}")
    n = None
    for name, t in tensors.items():
        dtype, ndim = _SPEC[name]
        if t.dtype != dtype or t.ndim != ndim:
            raise HistoryError(f"{name} must be a {ndim}-D {dtype} tensor, got {t.ndim}-D {t.dtype}")
        if n is None:
            n = t.shape[0]
        if t.shape[0] != n:
            raise HistoryError(f"every tensor needs the same number of rows; {name} has {t.shape[0]}, expected {n}")
    if not 1 <= n <= max_rows:
        raise HistoryError(f"a history upload holds 1..{max_rows} samples, got {n}")
    f = tensors["features"]
    if feature_dim is not None and f.shape[1] != feature_dim:
        raise HistoryError(f"features must be (N, {feature_dim}), got {tuple(f.shape)}")
    if f.shape[1] == 0 or not bool(torch.isfinite(f).all()):
        raise HistoryError("features must be non-empty and finite (no NaN or Inf)")
    if bool((tensors["labels"] < -1).any()):
        raise HistoryError("labels must be >= -1 (-1 marks an answer outside the vocabulary)")
    if "question" in tensors and bool((tensors["question"] < 0).any()):
        raise HistoryError("question word ids must be >= 0")
    if meta["sha256"] != digest(tensors):
        raise HistoryError("sha256 checksum does not match the tensors: the body was altered in transit")
    if not isinstance(meta["task"], str) or not 0 < len(meta["task"]) <= 64:
        raise HistoryError("task must be a non-empty string of at most 64 characters")
    return HistoryBatch(device_id=str(meta["device_id"]), task=meta["task"], tensors=tensors)
