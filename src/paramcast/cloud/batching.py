"""Dynamic batching: concurrent requests share one generator call.

A naive hypernetwork endpoint reads all generator weights for every request (~150 MB for the
1500-answer head, docs/design.md), so it serves ~33 requests/s on these machines. The batcher collects
requests that arrive while the generator is busy (up to ``max_batch``, waiting at most
``max_wait_ms`` for a batch to fill) and answers them with one ``fn(items)`` call in a worker
thread, which reads the weights once per batch.

Items whose ``key`` differs (e.g. uploads of different shapes) never share a call. If a batched call
raises, every item is retried alone, so one bad item cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["DynamicBatcher"]

T = TypeVar("T")
R = TypeVar("R")
_STOP = object()


class DynamicBatcher(Generic[T, R]):
    """Group submitted items into calls ``fn(list_of_items) -> list_of_results`` on one worker thread.

    ``on_batch(size, seconds)`` is called after every ``fn`` call (for metrics).
    """

    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 32,
                 max_wait_ms: float = 2.0, key: Callable[[T], Hashable] | None = None,
                 on_batch: Callable[[int, float], None] | None = None, name: str = "paramcast-batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1e3
        self.key = key or (lambda item: None)
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future:
        """Queue ``item``; the future resolves to its result (or raises what ``fn`` raised for it)."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        fut: Future = Future()
        self._queue.put((item, fut))
        return fut

    async def run(self, item: T) -> R:
        """``await`` form of :meth:`submit` for the event loop."""
        return await asyncio.wrap_future(self.submit(item))

    def close(self, timeout: float = 5.0) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _collect(self, first) -> tuple[list, bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
                break
            batch.append(entry)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._collect(first)
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            groups: dict[Hashable, list] = {}
            for item, fut in live:
                try:
                    k = self.key(item)
                except Exception as exc:  # a key that cannot be computed is that item's error
                    fut.set_exception(exc)
                    continue
                groups.setdefault(k, []).append((item, fut))
            for group in groups.values():
                self._call(group)
        while True:  # fail whatever is still queued after close()
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not _STOP and entry[1].set_running_or_notify_cancel():
                entry[1].set_exception(RuntimeError("batcher is closed"))

    def _call(self, group: list) -> None:
        items = [item for item, _ in group]
        t0 = time.perf_counter()
        try:
            results = list(self.fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batched call returned {len(results)} results for {len(items)} items")
        except Exception as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            for one in group:  # isolate the failing item(s)
                self._call([one])
            return
        if self.on_batch is not None:
            self.on_batch(len(items), time.perf_counter() - t0)
        for (_, fut), res in zip(group, results, strict=True):
            fut.set_result(res)
