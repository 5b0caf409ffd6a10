"""``paramcast serve --engine ray --ray-batching serve``: Ray Serve's ``@serve.batch`` in each replica
(:class:`paramcast.cloud.serve_batch.ServeBatcher`) answers as the uvicorn app does, refuses as it does,
and really groups concurrent uploads into one generator call (``/metrics``' batch histogram)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import replace

import httpx
import torch

import toy_service as toy
from paramcast.cloud.spec import AppSpec, build_app
from toy_service import TOKENS, LiveServer, free_port

BURST = 16


def _batches(metrics: str) -> tuple[float, float]:
    """(uploads answered, generator calls) so far, from the batch-size histogram."""
    total = re.search(r"^paramcast_batch_size_sum (\S+)$", metrics, re.M)
    count = re.search(r"^paramcast_batch_size_count (\S+)$", metrics, re.M)
    return (float(total.group(1)), float(count.group(1))) if total and count else (0.0, 0.0)


def _post(client, upload, dev="dev-a", **params):
    return client.post("/v1/adapt", content=toy.wire.encode(upload), params=params,
                       headers={"Authorization": f"Bearer {TOKENS[dev]}"})


def test_serve_batch_answers_like_uvicorn_and_batches(ray_instance, tmp_path):
    from ray import serve

    rayserve = ray_instance
    (tmp_path / "tokens.json").write_text(json.dumps({"version": 1, "devices": {
        dev: {"sha256": hashlib.sha256(tok.encode()).hexdigest()} for dev, tok in TOKENS.items()}}))
    spec = AppSpec(method="toy-hyper", plugins=("toy_service",), threads=1, batcher="serve", app_kwargs={
        "tokens": str(tmp_path / "tokens.json"), "batching": {"max_batch": 8, "max_wait_ms": 200.0}})
    serve.shutdown()  # Ray Serve keeps the port of its first start: start it afresh on ours (Ray stays up)
    url = rayserve.deploy(spec, replicas=1, port=free_port())
    app = build_app(replace(spec, batcher="replica"))  # the uvicorn engine's app, same recipe
    local = LiveServer(app)
    try:
        g = torch.Generator().manual_seed(3)
        uploads = [toy.make_upload("dev-a", features=torch.randn(1, toy.C, generator=g)) for _ in range(BURST)]
        uploads[1] = replace(uploads[1], samples=torch.tensor([5]))  # another key: never in the others' call
        with httpx.Client(base_url=url, timeout=60) as ray_c, httpx.Client(base_url=local.url, timeout=60) as uv_c:
            assert ray_c.get("/v1/info").json()["batching"]["batcher"] == "ServeBatcher"
            assert uv_c.get("/v1/info").json()["batching"]["batcher"] == "DynamicBatcher"
            for client in (ray_c, uv_c):  # the same refusals, as JSON 4xx
                r = _post(client, uploads[0], quant="nf9")
                assert (r.status_code, r.json()["error"]) == (400, "bad_quant")
                r = _post(client, toy.make_upload("dev-a", features=torch.randn(1, 3)))
                assert (r.status_code, r.json()["error"]) == (422, "bad_shape")
                r = _post(client, uploads[0], dev="dev-b")
                assert (r.status_code, r.json()["error"]) == (403, "forbidden")
            alone = [toy.wire.decode(_post(uv_c, u).content) for u in uploads]  # uvicorn, one at a time
            before = _batches(ray_c.get("/metrics").text)

        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                return await asyncio.gather(*(c.post("/v1/adapt", content=toy.wire.encode(u),
                                                     headers={"Authorization": f"Bearer {TOKENS['dev-a']}"})
                                              for u in uploads))

        answers = asyncio.run(burst())
        assert [r.status_code for r in answers] == [200] * BURST
        for r, want in zip(answers, alone, strict=True):
            head = toy.wire.decode(r.content)
            torch.testing.assert_close(head.weight, want.weight)
            torch.testing.assert_close(head.bias, want.bias)
        after = _batches(httpx.get(url + "/metrics", timeout=30).text)
        uploads_answered, calls = after[0] - before[0], after[1] - before[1]
        assert uploads_answered == BURST and 2 <= calls < BURST, (before, after)  # batched, and split by key
    finally:
        local.stop()
        app.state.close()
        serve.shutdown()  # the next test's deploy starts Serve on its own port
