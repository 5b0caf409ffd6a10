"""``serve_dtype=int8``: f_h's output layer as per-channel int8 weights and per-row int8 activations."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from paramcast import catalog, wire
from paramcast.cloud import create_app
from paramcast.cloud.auth import TokenStore
from paramcast.methods.cdc_mmpg.serving import Int8Weights, int8_linear, pack_int8
from paramcast.types import HeadParams, Upload

V = 40


def _bound(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Worst case |int8 - fp32| of ``x @ w.T`` per element: activation codes off by <= 1/255 of the
    row's max |x| (the engine's [-1, 1] range over 255 steps) or 1/254 (127 symmetric steps), weight
    codes by <= 1/254 of the channel's max |w|, over K products (the cross term is smaller)."""
    s = x.abs().amax(1, keepdim=True)
    return s * w.abs().amax(1) * x.shape[1] * (2 / 254 + 1 / 254**2)


def _uploads(m, n: int, seed: int = 0) -> list[Upload]:
    g = torch.Generator().manual_seed(seed)
    return [Upload(device_id=f"d{i}", method=m.name, task=m.task, model_version=m.model_version,
                   features=torch.randn(1, 192, generator=g) * (1 + 4 * i)) for i in range(n)]


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "fp32-gemm"])
def test_int8_linear_is_within_its_error_bound(engine):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 96, generator=g) * torch.rand(300, 1, generator=g)
    w[7] = 0  # an all-zero channel
    b = torch.randn(300, generator=g)
    x = torch.nn.functional.gelu(torch.randn(6, 96, generator=g)) * torch.tensor([[1e-3], [1], [30], [1], [1], [1]])
    x[3] = 0  # an all-zero row
    x[4] = -x[4].abs()  # a row of negatives only
    packed = pack_int8(w, b)
    if engine:
        assert len(packed.packed) == 2, "the quantized engines (fbgemm, oneDNN) could not prepack the layer"
    else:
        packed = Int8Weights(packed.codes, packed.scale, packed.bias)
    got, want = int8_linear(x, packed), torch.nn.functional.linear(x, w, b)
    err = (got - want).abs()
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert bool((err <= _bound(x, w) + 1e-6).all()), float((err - _bound(x, w)).max())
    assert float(err[1:3].max()) > 0  # it is quantised
    assert torch.equal(got[3], b) and torch.equal(got[:, 7], b[None, 7].expand(6))  # zeros stay exact


def test_both_int8_paths_agree_closely():
    g = torch.Generator().manual_seed(1)
    w, x = torch.randn(200, 96, generator=g), torch.randn(5, 96, generator=g)
    packed = pack_int8(w, None)
    a = int8_linear(x, packed)
    b = int8_linear(x, Int8Weights(packed.codes, packed.scale, packed.bias))
    assert float((a - b).abs().max()) <= float(_bound(x, w).max())


def test_int8_heads_are_close_to_fp32_batch_invariant_and_deterministic():
    ref = catalog.create("cdc-mmpg", num_answers=V)
    m = catalog.create("cdc-mmpg", num_answers=V, serve_dtype="int8")
    ups = _uploads(m, 6)
    with torch.inference_mode():
        h32, h8 = ref.cloud_step_batch(ups), m.cloud_step_batch(ups)
        alone = [m.cloud_step(u) for u in ups]
        again = catalog.create("cdc-mmpg", num_answers=V, serve_dtype="int8").cloud_step_batch(ups)
    for a, b, c, d in zip(h32, h8, alone, again, strict=True):
        assert b.weight.dtype == torch.float32 and b.weight.shape == a.weight.shape
        err = float((a.weight - b.weight).abs().max())
        assert 0 < err <= 0.03 * float(a.weight.abs().max())  # measured ~0.5 %; the worst case is K/127
        # Batched = alone up to the fp32 layers before f_h's output (their last bit depends on the batch
        # size); a flipped activation code would be ~1e-2 of an element. A fresh method, same batch: exact.
        for x, y in ((b.weight, c.weight), (b.bias, c.bias)):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-8)
        assert torch.equal(b.weight, d.weight) and torch.equal(b.bias, d.bias)


@pytest.mark.parametrize("engine", ["x86", "onednn", None], ids=["fbgemm", "onednn", "fp32-gemm"])
def test_int8_rows_do_not_depend_on_their_batch(engine):
    """The range columns fix the activation quantiser: row i of a batch is bit-exact row i alone,
    whatever the other rows' magnitudes (a per-tensor range would be set by the largest row)."""
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(500, 96, generator=g), torch.randn(500, generator=g)
    x = torch.randn(20, 96, generator=g) * torch.logspace(-3, 3, 20)[:, None]
    packed = pack_int8(w, b, engines=((1, engine),) if engine else ())
    assert len(packed.packed) == (1 if engine else 0)
    full = int8_linear(x, packed)
    for i in range(len(x)):
        assert torch.equal(full[i], int8_linear(x[i : i + 1], packed)[0]), i


def test_int8_engine_is_chosen_by_batch_size():
    packed = pack_int8(torch.randn(10, 4), None)
    (small, p_small), (large, p_large) = packed.packed
    assert (small, large) == (1, 16)
    assert packed.pack_for(1) is p_small and packed.pack_for(15) is p_small
    assert packed.pack_for(16) is p_large and packed.pack_for(64) is p_large


def test_int8_copy_follows_the_weights():
    m = catalog.create("cdc-mmpg", num_answers=V, serve_dtype="int8")
    up = _uploads(m, 1)
    b_old = m.adaptor.hyper.out.bias[-V:].clone()
    with torch.inference_mode():
        h1 = m.cloud_step_batch(up)[0]
    with torch.no_grad():
        m.adaptor.hyper.out.weight.mul_(2)
        m.adaptor.hyper.out.bias[-V:].add_(1)  # the head-bias part (the weight part of the bias is 0)
    with torch.inference_mode():
        h2 = m.cloud_step_batch(up)[0]
    assert torch.equal(h2.weight, 2 * h1.weight)  # same codes, scales x2 (exact in binary)
    torch.testing.assert_close(h2.bias, 2 * (h1.bias - b_old) + b_old + 1, rtol=0, atol=1e-6)


def test_int8_answers_round_trip_the_service():
    m = catalog.create("cdc-mmpg", num_answers=V, serve_dtype="int8")
    tokens, token = TokenStore(), "pct_int8-test-token"
    tokens.add_token("d0", token)
    up = _uploads(m, 1)[0]
    with TestClient(create_app(m, tokens=tokens), raise_server_exceptions=False) as client:
        r = client.post("/v1/adapt", content=wire.encode(up), headers={"Authorization": f"Bearer {token}"})
        bad = client.post("/v1/adapt", content=wire.encode(up)[:-3], headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    got = wire.decode(r.content, expect=HeadParams)
    with torch.inference_mode():
        want = m.cloud_step(up)
    assert torch.equal(got.weight, want.weight) and torch.equal(got.bias, want.bias)  # fp32 downlink: exact
    assert bad.status_code == 400 and bad.json()["error"] == "bad_payload"
