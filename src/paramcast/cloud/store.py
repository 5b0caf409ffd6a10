"""The cloud's history: one SQLite row per labelled sample, WAL mode, tensors as safetensors blobs.

    store = HistoryStore("runs/history.sqlite")
    store.add("phone-17", "videoqa", {"features": f, "labels": y})   # f (N, C), y (N,)
    for row in store.iter_rows(): ...                                 # HistoryRow, oldest first
    data = load_history("runs/history.sqlite")                        # stacked tensors for training

Durability: WAL journal with ``synchronous=FULL``, one transaction per upload, so a sample that was
acknowledged survives a crash or restart. Each blob carries its own sha256, checked on read. No
pickle: a blob is a safetensors file. A new store file is created mode 0600 (SQLite gives its
``-wal`` / ``-shm`` files the same mode), like the token file: it holds what devices uploaded.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = ["HistoryRow", "HistoryStore", "load_history"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT    NOT NULL,
    task      TEXT    NOT NULL,
    ts        REAL    NOT NULL,       -- unix seconds when the cloud stored the sample
    tensors   BLOB    NOT NULL,       -- safetensors: features (C,), label (), question (L,)?
    sha256    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_device ON samples(device_id);
"""


@dataclass(frozen=True)
class HistoryRow:
    id: int
    device_id: str
    task: str
    ts: float
    tensors: dict[str, torch.Tensor]  # features (C,) float32, label () int64, question (L,) int64?


class HistoryStore:
    """Thread-safe append-only store of labelled samples."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # an empty file is an empty SQLite database; creating it ourselves sets its mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, device_id: str, task: str, tensors: dict[str, torch.Tensor]) -> list[int]:
        """Store N samples (row i of every tensor) in one transaction; return their row ids."""
        n = int(tensors["labels"].shape[0])
        now = time.time()
        rows = []
        for i in range(n):
            one = {"features": tensors["features"][i].contiguous().clone(), "label": tensors["labels"][i].clone()}
            if "question" in tensors:
                one["question"] = tensors["question"][i].contiguous().clone()
            blob = st_save(one)
            rows.append((device_id, task, now, blob, hashlib.sha256(blob).hexdigest()))
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids = []
                for r in rows:
                    cur.execute("INSERT INTO samples (device_id, task, ts, tensors, sha256) VALUES (?,?,?,?,?)", r)
                    ids.append(int(cur.lastrowid))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def iter_rows(self, *, device_id: str | None = None, task: str | None = None, chunk: int = 1024,
                  on_bad: Callable[[int, str], None] | None = None) -> Iterator[HistoryRow]:
        """Rows in insertion order. A blob whose checksum does not match (or that is not safetensors)
        raises ``ValueError``, or, with ``on_bad``, is reported as ``on_bad(row_id, reason)`` and skipped."""
        where, args = [], []
        if device_id is not None:
            where.append("device_id = ?")
            args.append(device_id)
        if task is not None:
            where.append("task = ?")
            args.append(task)
        last = 0
        while True:
            sql = "SELECT id, device_id, task, ts, tensors, sha256 FROM samples WHERE id > ?"
            sql += "".join(f" AND {w}" for w in where) + " ORDER BY id LIMIT ?"
            with self._lock:
                batch = self._db.execute(sql, (last, *args, chunk)).fetchall()
            if not batch:
                return
            for rid, dev, tsk, ts, blob, sha in batch:
                try:
                    if hashlib.sha256(blob).hexdigest() != sha:
                        raise ValueError("sha256 mismatch")
                    tensors = st_load(blob)
                except Exception as exc:  # a bad checksum, or safetensors' own error on a bad blob
                    if on_bad is None:
                        raise ValueError(f"history row {rid} is corrupt ({exc}) in {self.path}") from None
                    on_bad(rid, "corrupt blob")
                    continue
                yield HistoryRow(rid, dev, tsk, ts, tensors)
            last = batch[-1][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _row_problem(t: dict[str, torch.Tensor], num_labels: int | None) -> str | None:
    f, y = t.get("features"), t.get("label")
    if f is None or y is None or f.dtype != torch.float32 or f.ndim != 1 or y.dtype != torch.int64 or y.ndim != 0:
        return "not a (features (C,) float32, label () int64) row"
    if not bool(torch.isfinite(f).all()):
        return "non-finite features"
    if int(y) < -1 or (num_labels is not None and int(y) >= num_labels):
        return f"label outside [-1, {num_labels})" if num_labels is not None else "label < -1"
    return None


def load_history(path: str | Path, *, task: str | None = None, device_id: str | None = None,
                 num_labels: int | None = None) -> dict:
    """The store's usable rows as training tensors (what ``paramcast train --from-store`` reads).

    Returns ``{"features": (N, C) float32, "labels": (N,) int64, "question": (N, L) int64 (only when
    every row has one of the same length), "devices": list[str] (N), "device_index": (N,) int64 into
    "device_names", "device_names": list[str], "timestamps": (N,) float64, "ids": (N,) int64,
    "skipped": {reason: [row ids]}}``. A row is skipped, not fatal, when its blob is corrupt, it is not
    a features/label pair, its features are not finite, its label is outside ``[-1, num_labels)``,
    or its feature width differs from the store's most common one. ``ValueError`` if no row is left.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"history store {path} does not exist")
    skipped: dict[str, list[int]] = {}

    def skip(rid: int, reason: str) -> None:
        skipped.setdefault(reason, []).append(rid)

    rows = []
    with HistoryStore(path) as store:
        for r in store.iter_rows(task=task, device_id=device_id, on_bad=skip):
            problem = _row_problem(r.tensors, num_labels)
            if problem is None:
                rows.append(r)
            else:
                skip(r.id, problem)
    if rows:
        width = Counter(r.tensors["features"].shape[0] for r in rows).most_common(1)[0][0]
        for r in rows:
            if r.tensors["features"].shape[0] != width:
                skip(r.id, f"feature width other than the store's {width}")
        rows = [r for r in rows if r.tensors["features"].shape[0] == width]
    if not rows:
        raise ValueError(f"history store {path} holds no usable samples" + (f" for task {task!r}" if task else "")
                         + (f" (skipped: { {k: len(v) for k, v in skipped.items()} })" if skipped else ""))
    names = sorted({r.device_id for r in rows})
    index = {name: i for i, name in enumerate(names)}
    out = {
        "features": torch.stack([r.tensors["features"] for r in rows]),
        "labels": torch.stack([r.tensors["label"] for r in rows]),
        "devices": [r.device_id for r in rows],
        "device_names": names,
        "device_index": torch.tensor([index[r.device_id] for r in rows], dtype=torch.int64),
        "timestamps": torch.tensor([r.ts for r in rows], dtype=torch.float64),
        "ids": torch.tensor([r.id for r in rows], dtype=torch.int64),
        "skipped": skipped,
    }
    qs = [r.tensors.get("question") for r in rows]
    if all(q is not None for q in qs) and len({q.shape for q in qs}) == 1:
        out["question"] = torch.stack(qs)
    return out
