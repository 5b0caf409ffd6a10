"""Dynamic batching: concurrent uploads share one generator call, and each answer equals the alone one."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import torch

import toy_service as toy
from paramcast.cloud import Batching, DynamicBatcher, TokenStore, create_app


def test_batcher_groups_and_isolates_failures():
    sizes = []

    def fn(items):
        sizes.append(len(items))
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [i * 2 for i in items]

    b = DynamicBatcher(fn, max_batch=16, max_wait_ms=50)
    futs = [b.submit(i) for i in range(10)] + [b.submit(-1)]
    assert [f.result(5) for f in futs[:10]] == [i * 2 for i in range(10)]
    with pytest.raises(ValueError, match="negative"):
        futs[-1].result(5)
    assert max(sizes) > 1  # they were batched, then the bad one was isolated
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(1)


def test_batcher_never_mixes_keys_and_respects_max_batch():
    seen = []
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        seen.append(list(items))
        return items

    b = DynamicBatcher(fn, max_batch=4, max_wait_ms=20, key=lambda s: len(s))
    futs = [b.submit(s) for s in ["a", "bb", "c", "dd", "e", "f", "g", "h"]]
    gate.set()
    assert [f.result(5) for f in futs] == ["a", "bb", "c", "dd", "e", "f", "g", "h"]
    assert all(len(batch) <= 4 and len({len(s) for s in batch}) == 1 for batch in seen)
    b.close()


def test_concurrent_devices_get_their_alone_answers():
    n = 12
    store = TokenStore()
    for i in range(n):
        store.add_token(f"dev-{i}", f"token-{i}-abcdefghijklmnop")
    method = toy.ToyHyper()
    app = create_app(method, tokens=store, batching=Batching(max_batch=n, max_wait_ms=200))
    uploads = [toy.make_upload(f"dev-{i}", features=torch.randn(1, toy.C)) for i in range(n)]
    alone = [method.cloud_step(u) for u in uploads]

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cloud") as c:
            return await asyncio.gather(*[
                c.post("/v1/adapt", content=toy.wire.encode(u),
                       headers={"Authorization": f"Bearer token-{i}-abcdefghijklmnop"})
                for i, u in enumerate(uploads)])

    t0 = time.perf_counter()
    responses = asyncio.run(go())
    assert time.perf_counter() - t0 < 10
    for r, want, u in zip(responses, alone, uploads, strict=True):
        assert r.status_code == 200, r.text
        got = toy.wire.decode(r.content)
        assert got.device_id == u.device_id
        # Same numbers as alone (fp32 GEMM may round the last bit differently for another batch size).
        torch.testing.assert_close(got.weight, want.weight, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got.bias, want.bias, rtol=1e-6, atol=1e-6)
    assert app.state.metrics.value("paramcast_batch_size_count") < n, "uploads were not batched"
    app.state.close()
