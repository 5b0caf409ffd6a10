"""``paramcast serve --engine ray --ray-batching serve``: Ray Serve's ``@serve.batch`` groups the uploads
inside each replica instead of :class:`~paramcast.cloud.batching.DynamicBatcher` (docs/scale.md compares
the two). Its own module so that :mod:`paramcast.cloud.spec` can import it without importing
:mod:`paramcast.cloud.rayserve`, which imports the spec."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from paramcast.cloud.batching import answer_grouped

__all__ = ["ServeBatcher"]


class ServeBatcher:
    """Ray Serve's ``@serve.batch`` in the place of :class:`~paramcast.cloud.batching.DynamicBatcher`
    (``create_app(batcher=ServeBatcher)``; ``AppSpec.batcher = "serve"``), with its semantics.

    Serve's queue collects up to ``max_batch`` items on the replica's event loop, waiting at most
    ``max_wait_ms`` (``batch_wait_timeout_s``), one batch at a time (``max_concurrent_batches=1``, as
    the one worker thread of DynamicBatcher). Serve knows no keys, so each received batch is split by
    ``key`` (uploads of different shapes never share a ``fn`` call) and a failing call is retried
    item by item, by the same :func:`~paramcast.cloud.batching.answer_grouped` DynamicBatcher uses.
    ``fn`` (blocking torch work) runs on one worker thread, off the event loop.
    """

    def __init__(self, fn: Callable[[Sequence], Sequence], *, max_batch: int = 32, max_wait_ms: float = 2.0,
                 key: Callable[[object], Hashable] | None = None,
                 on_batch: Callable[[int, float], None] | None = None):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paramcast-serve-batch")

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_wait_ms / 1e3)
        async def paramcast_serve_batch(items: list) -> list:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: answer_grouped(fn, items, key=key, on_batch=on_batch))

        self._batched = paramcast_serve_batch

    async def run(self, item):
        """The result for ``item`` (or what ``fn`` raised for it), once its batch is answered."""
        result, exc = await self._batched(item)
        if exc is not None:
            raise exc
        return result

    def close(self, timeout: float = 5.0) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
