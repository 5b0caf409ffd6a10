"""Dynamic batching: concurrent requests share one generator call.

A naive hypernetwork endpoint reads all generator weights for every request (~150 MB for the
1500-answer head, docs/design.md), so it serves ~33 requests/s on these machines. The batcher collects
requests that arrive while the generator is busy (up to ``max_batch``, waiting at most
``max_wait_ms`` for a batch to fill) and answers them with one ``fn(items)`` call in a worker
thread, which reads the weights once per batch.

:class:`InlineBatcher` does the same on the event loop's own thread (``paramcast serve --encode-threads 0``):
no worker thread, so no GIL hand-off after each torch kernel, for a longer tail while the loop is busy.

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

__all__ = ["DynamicBatcher", "InlineBatcher", "answer_grouped"]

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
        _check(max_batch, max_wait_ms)
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1e3
        self.key = key
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
            _settle(live, answer_grouped(self.fn, [item for item, _ in live], key=self.key, on_batch=self.on_batch))
        while True:  # fail whatever is still queued after close()
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not _STOP and entry[1].set_running_or_notify_cancel():
                entry[1].set_exception(RuntimeError("batcher is closed"))


class InlineBatcher(Generic[T, R]):
    """Group items on the event loop and call ``fn`` there, on the loop's own thread (no worker thread).

    The call blocks the loop while it runs; requests that arrive meanwhile wait in the sockets and form
    the next batch. With no second Python thread there is no GIL hand-off after each torch kernel
    (``benchmarks/diagnostics/gil_convoy.py``); torch still runs each kernel on its OpenMP threads.
    Same constructor and ``run`` / ``close`` as :class:`DynamicBatcher`.
    """

    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 32,
                 max_wait_ms: float = 2.0, key: Callable[[T], Hashable] | None = None,
                 on_batch: Callable[[int, float], None] | None = None):
        _check(max_batch, max_wait_ms)
        self.fn, self.max_batch, self.max_wait_s, self.key, self.on_batch = fn, max_batch, max_wait_ms / 1e3, key, on_batch
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    async def run(self, item: T) -> R:
        if self._closed:
            raise RuntimeError("batcher is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await fut

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        self._cancel_timer()
        live = [(item, fut) for item, fut in self._pending if not fut.done()]
        self._pending = []
        try:
            _settle(live, answer_grouped(self.fn, [item for item, _ in live], key=self.key, on_batch=self.on_batch))
        except BaseException as exc:  # e.g. on_batch raising: no waiter is left hanging
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("batch aborted"))
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Fail what waits; call it on the loop's thread (asyncio futures). ``timeout``: unused, for the same call as
        :meth:`DynamicBatcher.close`."""
        self._closed = True
        self._cancel_timer()
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(RuntimeError("batcher is closed"))
        self._pending = []


def _check(max_batch: int, max_wait_ms: float) -> None:
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if max_wait_ms < 0:
        raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")


def _settle(live: list, outcomes: list) -> None:
    """Resolve each ``(item, future)`` of ``live`` (threading or asyncio futures) with its ``(result, exception)``."""
    for (_, fut), (result, exc) in zip(live, outcomes, strict=True):
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


def answer_grouped(fn: Callable[[Sequence[T]], Sequence[R]], items: Sequence[T], *,
                   key: Callable[[T], Hashable] | None = None,
                   on_batch: Callable[[int, float], None] | None = None) -> list[tuple[R | None, Exception | None]]:
    """Answer ``items`` with one ``fn`` call per ``key`` group (a failing call is retried item by item):
    one ``(result, None)`` or ``(None, exception)`` per item, in order. ``on_batch(size, seconds)``
    follows every successful call. The grouping both batchers share (:class:`DynamicBatcher`, and
    ``@serve.batch``'s :class:`paramcast.cloud.serve_batch.ServeBatcher`)."""
    out: list = [None] * len(items)
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        try:
            k = key(item) if key is not None else None
        except Exception as exc:  # a key that cannot be computed is that item's error
            out[i] = (None, exc)
            continue
        groups.setdefault(k, []).append(i)
    for index in groups.values():
        _call(fn, items, index, out, on_batch)
    return out


def _call(fn, items, index: list[int], out: list, on_batch) -> None:
    group = [items[i] for i in index]
    t0 = time.perf_counter()
    try:
        results = list(fn(group))
        if len(results) != len(group):
            raise RuntimeError(f"batched call returned {len(results)} results for {len(group)} items")
    except Exception as exc:
        if len(index) == 1:
            out[index[0]] = (None, exc)
            return
        for i in index:  # isolate the failing item(s)
            _call(fn, items, [i], out, on_batch)
        return
    if on_batch is not None:
        on_batch(len(group), time.perf_counter() - t0)
    for i, res in zip(index, results, strict=True):
        out[i] = (res, None)
