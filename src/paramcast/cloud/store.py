"""The cloud's history: one row per labelled sample, tensors as safetensors blobs, in SQLite or PostgreSQL.

    store = open_store("runs/history.sqlite")           # or open_store("postgresql://user@db/paramcast")
    store.add("phone-17", "videoqa", {"features": f, "labels": y})   # f (N, C), y (N,)
    for row in store.iter_rows(): ...                                 # HistoryRow, oldest first
    data = load_history("runs/history.sqlite")                        # stacked tensors for training

Two back ends behind one interface (``add``, ``iter_rows``, ``len``, ``close``): :class:`HistoryStore`,
an SQLite file (the embedded default), and :class:`~paramcast.cloud.pgstore.PostgresHistoryStore`, for
many replicas writing one history (``postgresql://`` or ``postgres://`` URLs; :func:`open_store` picks).

Durability: SQLite runs a WAL journal with ``synchronous=FULL``; PostgreSQL commits synchronously (its
default). Either way one transaction per upload, so a sample that was acknowledged survives a crash or
restart. Each blob carries its own sha256, checked on read. No pickle: a blob is a safetensors file. A
new SQLite file is created mode 0600 (SQLite gives its ``-wal`` / ``-shm`` files the same mode), like the
token file: it holds what devices uploaded.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = ["HistoryRow", "HistoryStore", "StoreUnavailable", "describe_store", "is_postgres_url", "load_history",
           "open_store"]

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

Raw = tuple[str, str, float, bytes, str]  # device_id, task, ts, blob, sha256: one row as both back ends store it


class StoreUnavailable(RuntimeError):
    """The history's database cannot be reached now (the service answers 503; the next call reconnects)."""


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe_store(target: str | Path) -> str:
    """``target`` fit for a log line or an error message: a URL's password is replaced by ``***``."""
    if not is_postgres_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(target: str | Path):
    """The history store at ``target``: a ``postgresql://`` URL, else an SQLite file path."""
    if is_postgres_url(target):
        try:
            from paramcast.cloud.pgstore import PostgresHistoryStore
        except ImportError as exc:
            raise ValueError(f"a postgresql:// store needs psycopg ({exc}): pip install 'paramcast[postgres]'") from None

        return PostgresHistoryStore(str(target))
    return HistoryStore(target)


@dataclass(frozen=True)
class HistoryRow:
    id: int
    device_id: str
    task: str
    ts: float
    tensors: dict[str, torch.Tensor]  # features (C,) float32, label () int64, question (L,) int64?


def encode_rows(device_id: str, task: str, tensors: dict[str, torch.Tensor]) -> list[Raw]:
    """Row i of every tensor as one safetensors blob with its sha256 (what ``add`` stores)."""
    now = time.time()
    rows = []
    for i in range(int(tensors["labels"].shape[0])):
        one = {"features": tensors["features"][i].contiguous().clone(), "label": tensors["labels"][i].clone()}
        if "question" in tensors:
            one["question"] = tensors["question"][i].contiguous().clone()
        blob = st_save(one)
        rows.append((device_id, task, now, blob, hashlib.sha256(blob).hexdigest()))
    return rows


def decode_rows(batch: Sequence[tuple], where: str, on_bad: Callable[[int, str], None] | None) -> Iterator[HistoryRow]:
    """Fetched ``(id, device_id, task, ts, blob, sha256)`` tuples as rows, each blob checked against its sha256."""
    for rid, dev, tsk, ts, blob, sha in batch:
        blob = bytes(blob)
        try:
            if hashlib.sha256(blob).hexdigest() != sha:
                raise ValueError("sha256 mismatch")
            tensors = st_load(blob)
        except Exception as exc:  # a bad checksum, or safetensors' own error on a bad blob
            if on_bad is None:
                raise ValueError(f"history row {rid} is corrupt ({exc}) in {where}") from None
            on_bad(rid, "corrupt blob")
            continue
        yield HistoryRow(rid, dev, tsk, ts, tensors)


class _Store:
    """What both back ends share: filtered, chunked, checksum-checked reads (``_query`` runs one SELECT)."""

    _mark = "?"  # the driver's parameter placeholder
    where = ""   # the store, as error messages name it

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM samples", ())[0][0])

    def iter_rows(self, *, device_id: str | None = None, task: str | None = None, chunk: int = 1024,
                  on_bad: Callable[[int, str], None] | None = None) -> Iterator[HistoryRow]:
        """Rows in id order. A blob whose checksum does not match (or that is not safetensors)
        raises ``ValueError``, or, with ``on_bad``, is reported as ``on_bad(row_id, reason)`` and skipped."""
        m = self._mark
        sql = f"SELECT id, device_id, task, ts, tensors, sha256 FROM samples WHERE id > {m}"
        args: tuple = ()
        for column, value in (("device_id", device_id), ("task", task)):
            if value is not None:
                sql += f" AND {column} = {m}"
                args += (value,)
        sql += f" ORDER BY id LIMIT {m}"
        last = 0
        while batch := self._query(sql, (last, *args, chunk)):
            yield from decode_rows(batch, self.where, on_bad)
            last = batch[-1][0]

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HistoryStore(_Store):
    """Thread-safe append-only store of labelled samples in an SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.where = str(self.path)
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
        rows = encode_rows(device_id, task, tensors)
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

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


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
    """The store's usable rows as training tensors (what ``paramcast train --from-store`` reads);
    ``path`` is an SQLite file or a ``postgresql://`` URL.

    Returns ``{"features": (N, C) float32, "labels": (N,) int64, "question": (N, L) int64 (only when
    every row has one of the same length), "devices": list[str] (N), "device_index": (N,) int64 into
    "device_names", "device_names": list[str], "timestamps": (N,) float64, "ids": (N,) int64,
    "skipped": {reason: [row ids]}}``. A row is skipped, not fatal, when its blob is corrupt, it is not
    a features/label pair, its features are not finite, its label is outside ``[-1, num_labels)``,
    or its feature width differs from the store's most common one. ``ValueError`` if no row is left.
    """
    if not is_postgres_url(path) and not Path(path).exists():
        raise FileNotFoundError(f"history store {path} does not exist")
    where = describe_store(path)
    skipped: dict[str, list[int]] = {}

    def skip(rid: int, reason: str) -> None:
        skipped.setdefault(reason, []).append(rid)

    rows = []
    with open_store(path) as store:
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
        raise ValueError(f"history store {where} holds no usable samples" + (f" for task {task!r}" if task else "")
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
