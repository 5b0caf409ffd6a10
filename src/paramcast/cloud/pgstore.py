"""The history on PostgreSQL: what :class:`~paramcast.cloud.store.HistoryStore` does, for many replicas.

    store = PostgresHistoryStore("postgresql://paramcast@db.internal:5432/paramcast")

Same table, same rows, same checksums as the SQLite file (``samples``: id, device_id, task, ts,
tensors as a safetensors ``bytea``, sha256), created by the store on first use under an advisory lock
(so replicas starting together do not race on ``CREATE TABLE``). One transaction per upload: an
acknowledged upload is committed (PostgreSQL's default ``synchronous_commit = on``; a server set to
``off`` can lose the last few hundred ms of acknowledged rows in a database crash, so leave it on).

Credentials: anything libpq reads works (``PGPASSWORD``, ``~/.pgpass``, ``PGSSLMODE``...), so the
password need not be on the command line; error messages and logs name the URL with ``***`` for it.

Decisions: one connection per process, used under a lock like the SQLite one (one upload's insert
takes milliseconds; scale-out is more replicas, each with its own connection). A lost connection makes the call raise :class:`StoreUnavailable` (the service answers
503, the device retries) and the next call reconnects; an insert whose commit is in doubt is never
retried by the store, so a retry by the device is the only duplicate source, as with SQLite. Row ids
come from an identity column: unique and increasing in insertion order per transaction, but a
concurrent writer's transaction may commit a lower id later, so ``iter_rows`` is a consistent history
for training once writes have stopped, not a change feed.
"""

from __future__ import annotations

import threading

import psycopg
import torch

from paramcast.cloud.store import StoreUnavailable, _Store, describe_store, encode_rows

__all__ = ["PostgresHistoryStore"]

_LOCK_KEY = 0x70617261  # pg_advisory_xact_lock key held while the schema is created ("para")
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS samples (
        id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id TEXT             NOT NULL,
        task      TEXT             NOT NULL,
        ts        DOUBLE PRECISION NOT NULL,  -- unix seconds when the cloud stored the sample
        tensors   BYTEA            NOT NULL,  -- safetensors: features (C,), label (), question (L,)?
        sha256    TEXT             NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS samples_device ON samples(device_id)",
)


class PostgresHistoryStore(_Store):
    """Thread-safe append-only store of labelled samples in a PostgreSQL database."""

    _mark = "%s"

    def __init__(self, url: str, *, connect_timeout_s: int = 10):
        self.url, self.where = url, describe_store(url)
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._db: psycopg.Connection | None = None
        with self._lock:
            self._connect()

    def _connect(self) -> psycopg.Connection:
        if self._db is None or self._db.closed:
            try:
                db = psycopg.connect(self.url, autocommit=True, connect_timeout=self._timeout,
                                     application_name="paramcast")
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot connect to the history database {self.where}: "
                                       f"{str(exc).strip().splitlines()[0]}") from None
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                for statement in _SCHEMA:
                    db.execute(statement)
            self._db = db
        return self._db

    def _lost(self, exc: Exception) -> StoreUnavailable:
        if self._db is not None:
            self._db.close()
        self._db = None
        return StoreUnavailable(f"lost the history database {self.where}: {str(exc).strip().splitlines()[0]}")

    def add(self, device_id: str, task: str, tensors: dict[str, torch.Tensor]) -> list[int]:
        """Store N samples (row i of every tensor) in one transaction; return their row ids."""
        rows = encode_rows(device_id, task, tensors)
        with self._lock:
            db = self._connect()
            try:
                with db.transaction(), db.cursor() as cur:
                    cur.executemany("INSERT INTO samples (device_id, task, ts, tensors, sha256) "
                                    "VALUES (%s, %s, %s, %s, %s) RETURNING id", rows, returning=True)
                    ids = []
                    while True:
                        ids.append(int(cur.fetchone()[0]))
                        if not cur.nextset():
                            break
            except psycopg.OperationalError as exc:
                raise self._lost(exc) from None
        return ids

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            db = self._connect()
            try:
                return db.execute(sql, args).fetchall()
            except psycopg.OperationalError as exc:
                raise self._lost(exc) from None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
