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

from dataclasses import dataclass

import torch
from safetensors.torch import load as st_load

from paramcast.wire._container import DTYPES, WireError, read_header, short, write
from paramcast.wire._container import digest as _digest

__all__ = ["SCHEMA", "HistoryBatch", "HistoryError", "LabelError", "decode_history", "digest", "encode_history"]

SCHEMA = "paramcast.history/1"
_SPEC = {"features": (torch.float32, 2), "labels": (torch.int64, 1), "question": (torch.int64, 2)}
_REQUIRED = ("features", "labels")
_META_KEYS = {"schema", "device_id", "task", "sha256"}


class HistoryError(WireError):
    """A history body the service refuses; the message says what is wrong."""


class LabelError(HistoryError):
    """A well-formed history body whose labels lie outside the served answer vocabulary."""


@dataclass(frozen=True)
class HistoryBatch:
    device_id: str
    task: str
    tensors: dict[str, torch.Tensor]  # features (N, C) float32, labels (N,), question (N, L)?

    def __len__(self) -> int:
        return int(self.tensors["labels"].shape[0])


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """The ``sha256`` of a history body (docs/wire.md §5): no prefix, Python's default ``", "`` separators."""
    return _digest(tensors, separators=(", ", ": "))


def encode_history(device_id: str, task: str, features: torch.Tensor, labels: torch.Tensor,
                   question: torch.Tensor | None = None) -> bytes:
    """Body for ``POST /v1/history``: features (N, C), labels (N,), question (N, L) or None."""
    tensors = {"features": features.detach().to(torch.float32).contiguous(),
               "labels": labels.detach().to(torch.int64).contiguous()}
    if question is not None:
        tensors["question"] = question.detach().to(torch.int64).contiguous()
    meta = {"schema": SCHEMA, "device_id": device_id, "task": task, "sha256": digest(tensors)}
    return write(tensors, meta)


def decode_history(data: bytes, *, max_rows: int = 4096, feature_dim: int | None = None,
                   num_labels: int | None = None) -> HistoryBatch:
    """Parse and validate a history body; raise :class:`HistoryError` on anything unexpected.

    Names, dtypes, shapes and row counts are checked on the header before any tensor is read;
    ``num_labels`` (the served answer vocabulary V) bounds the labels to ``[-1, V)``.
    """
    meta, entries = read_header(data, dtypes=DTYPES, error=HistoryError)  # every dtype, so a wrong one is named
    if set(meta) != _META_KEYS:
        raise HistoryError(f"safetensors __metadata__ must have exactly the keys {sorted(_META_KEYS)}, "
                           f"got {short(sorted(meta))}")
    if meta["schema"] != SCHEMA:
        raise HistoryError(f"schema {short(meta['schema'])} is not supported; expected {SCHEMA!r}")
    if not 0 < len(meta["task"]) <= 64:
        raise HistoryError("task must be a non-empty string of at most 64 characters")
    unknown = set(entries) - set(_SPEC)
    missing = set(_REQUIRED) - set(entries)
    if unknown or missing:
        raise HistoryError(f"tensors must be {sorted(_REQUIRED)} (+ optional 'question'); "
                           f"unknown {short(sorted(unknown))}, missing {sorted(missing)}")
    for name, (dtype, shape) in entries.items():
        want_dtype, ndim = _SPEC[name]
        if dtype != want_dtype or len(shape) != ndim:
            raise HistoryError(f"{name} must be a {ndim}-D {want_dtype} tensor, got {len(shape)}-D {dtype}")
    n = entries["labels"][1][0]
    for name, (_, shape) in entries.items():
        if shape[0] != n:
            raise HistoryError(f"every tensor needs the same number of rows; {name} has {shape[0]}, expected {n}")
    if not 1 <= n <= max_rows:
        raise HistoryError(f"a history upload holds 1..{max_rows} samples, got {n}")
    c = entries["features"][1][1]
    if feature_dim is not None and c != feature_dim:
        raise HistoryError(f"features must be (N, {feature_dim}), got {entries['features'][1]}")
    if c == 0:
        raise HistoryError("features must have at least one column")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type for every malformation
        raise HistoryError(f"not a valid safetensors file: {str(exc)[:200]}") from None
    if not bool(torch.isfinite(tensors["features"]).all()):
        raise HistoryError("features must be finite (no NaN or Inf)")
    labels = tensors["labels"]
    if bool((labels < -1).any()):
        raise HistoryError("labels must be >= -1 (-1 marks an answer outside the vocabulary)")
    if num_labels is not None and bool((labels >= num_labels).any()):
        raise LabelError(f"label {int(labels.max())} is outside the served vocabulary of {num_labels} answers: "
                         f"labels must lie in [-1, {num_labels})")
    if "question" in tensors and bool((tensors["question"] < 0).any()):
        raise HistoryError("question word ids must be >= 0")
    if meta["sha256"] != digest(tensors):
        raise HistoryError("sha256 checksum does not match the tensors: the body was altered in transit")
    return HistoryBatch(device_id=meta["device_id"], task=meta["task"], tensors=tensors)
