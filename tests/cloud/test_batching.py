"""Dynamic batching: concurrent uploads share one generator call, and each answer equals the alone one."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import torch

import toy_service as toy
from paramcast.cloud import Batching, DynamicBatcher, InlineBatcher, TokenStore, create_app


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


def test_inline_batcher_groups_on_the_loop_and_isolates_failures():
    calls = []

    def fn(items):
        calls.append((threading.current_thread(), len(items)))
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [i * 2 for i in items]

    async def go():
        b = InlineBatcher(fn, max_batch=4, max_wait_ms=50)
        out = await asyncio.gather(*[b.run(i) for i in [*range(6), -1]], return_exceptions=True)
        b.close()
        with pytest.raises(RuntimeError, match="closed"):
            await b.run(1)
        return out

    out = asyncio.run(asyncio.wait_for(go(), 5))
    assert out[:6] == [0, 2, 4, 6, 8, 10] and isinstance(out[6], ValueError)
    assert {t for t, _ in calls} == {threading.current_thread()}  # no worker thread
    # a full batch goes at once; the other three wait together, fail together, and are retried alone
    assert [size for _, size in calls] == [4, 3, 1, 1, 1]


def test_inline_batcher_skips_a_cancelled_waiter_and_answers_the_rest():
    seen = []

    async def go():
        b = InlineBatcher(lambda items: (seen.append(list(items)), items)[1], max_batch=8, max_wait_ms=20)
        tasks = [asyncio.ensure_future(b.run(i)) for i in range(3)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(asyncio.wait_for(go(), 5))
    assert out[0] == 0 and isinstance(out[1], asyncio.CancelledError) and out[2] == 2 and seen == [[0, 2]]


def test_inline_batcher_fails_the_batch_when_on_batch_raises():
    def on_batch(size, seconds):
        raise RuntimeError("metrics broke")

    async def go():
        b = InlineBatcher(lambda items: items, max_batch=2, max_wait_ms=10_000, on_batch=on_batch)
        return await asyncio.gather(b.run(1), b.run(2), return_exceptions=True)

    out = asyncio.run(asyncio.wait_for(go(), 5))
    assert all(isinstance(e, RuntimeError) and "metrics broke" in str(e) for e in out)  # nobody is left hanging


def test_inline_serving_refuses_a_batcher_with_its_own_thread():
    class ThreadedBatcher(DynamicBatcher):  # e.g. Ray Serve's @serve.batch: generates off the loop
        pass

    with pytest.raises(ValueError, match="InlineBatcher"):
        create_app(toy.ToyHyper(), batching=Batching(encode_threads=0), batcher=ThreadedBatcher)


def test_inline_batcher_close_fails_what_waits():
    async def go():
        b = InlineBatcher(lambda items: items, max_batch=8, max_wait_ms=10_000)
        task = asyncio.ensure_future(b.run(1))
        await asyncio.sleep(0)
        b.close()
        return await asyncio.gather(task, return_exceptions=True)

    (err,) = asyncio.run(go())
    assert isinstance(err, RuntimeError) and "closed" in str(err)


@pytest.mark.parametrize("encode_threads", [1, 0], ids=["threads", "inline"])
def test_concurrent_devices_get_their_alone_answers(encode_threads, monkeypatch):
    from paramcast.cloud import app as app_module

    encoded_on = set()
    real_encode = app_module.wire.encode
    monkeypatch.setattr(app_module.wire, "encode",
                        lambda *a, **k: (encoded_on.add(threading.current_thread().name), real_encode(*a, **k))[1])
    n = 12
    store = TokenStore()
    for i in range(n):
        store.add_token(f"dev-{i}", f"token-{i}-abcdefghijklmnop")
    method = toy.ToyHyper()
    app = create_app(method, tokens=store, batching=Batching(max_batch=n, max_wait_ms=200, encode_threads=encode_threads))
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
    assert type(app.state.batcher) is (InlineBatcher if encode_threads == 0 else DynamicBatcher)
    on_encoder = {name for name in encoded_on if name.startswith("paramcast-encode")}
    assert bool(on_encoder) == (encode_threads == 1)  # inline: every answer encoded on the loop's thread
    app.state.close()
