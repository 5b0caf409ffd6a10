"""Quantisers round-trip within their stated bounds; sizes follow from shapes alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paramcast.compression import (
    NF4_LEVELS,
    SCHEMES,
    dequantise,
    error_bound,
    part_specs,
    payload_nbytes,
    quantise,
)


def _roundtrip(t: torch.Tensor, scheme: str, blocksize: int = 64) -> torch.Tensor:
    return dequantise(quantise(t, scheme, blocksize), scheme, tuple(t.shape), blocksize)


def _real_nbytes(parts: dict[str, torch.Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in parts.values())


def test_nf4_levels_are_the_ones_bitsandbytes_uses():
    import bitsandbytes.functional as bnbf

    assert torch.allclose(torch.tensor(NF4_LEVELS), bnbf.get_4bit_type("nf4", device="cpu"))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("shape", [(1500, 96), (1500,), (1, 192), (7,), (3, 5, 2)])
def test_roundtrip_within_bound(scheme, shape):
    torch.manual_seed(0)
    t = torch.randn(shape) * 0.1  # (shape)
    y = _roundtrip(t, scheme)
    assert y.dtype == torch.float32 and y.shape == t.shape
    assert ((y - t).abs() <= error_bound(t, scheme)).all()
    if scheme == "fp32":
        assert torch.equal(y, t)


def test_2d_nf4_with_row_not_a_multiple_of_blocksize():
    # bitsandbytes' CPU dequantize_4bit gets (1500, 96) wrong unless flattened (see _quant docstring).
    t = torch.randn(1500, 96)
    err = (_roundtrip(t, "nf4") - t).abs().max()
    assert err <= 0.152 * t.abs().max() * 1.01


@pytest.mark.parametrize("scheme", ["int8", "nf4"])
def test_bounds_match_the_stated_constants(scheme):
    # int8: about absmax / 141 (< absmax / 127); nf4: (1 - 0.6962) / 2 = 0.1519 of absmax, for one block.
    t = torch.linspace(-1, 1, 64)
    bound = error_bound(t, scheme)
    assert bound.max() <= (1 / 127 if scheme == "int8" else 0.1520)
    assert bound.max() >= (1 / 145 if scheme == "int8" else 0.1518)


@settings(max_examples=40, deadline=None)
@given(
    scheme=st.sampled_from(SCHEMES),
    blocksize=st.sampled_from([32, 64, 256]),
    n=st.integers(1, 700),
    scale=st.floats(1e-6, 1e4),
    seed=st.integers(0, 2**16),
)
def test_roundtrip_random_within_bound(scheme, blocksize, n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, generator=g) * scale  # (n,)
    t[torch.rand(n, generator=g) < 0.1] = 0.0
    parts = quantise(t, scheme, blocksize)
    assert _real_nbytes(parts) == payload_nbytes((n,), scheme, blocksize)
    assert {k: (v.dtype, tuple(v.shape)) for k, v in parts.items()} == part_specs((n,), scheme, blocksize)
    y = dequantise(parts, scheme, (n,), blocksize)
    assert ((y - t).abs() <= error_bound(t, scheme, blocksize)).all()


def test_zeros_and_subnormals_roundtrip_to_zero_error_bound():
    t = torch.tensor([0.0, 1e-40, -1e-40, 0.0])
    for scheme in SCHEMES:
        assert ((_roundtrip(t, scheme) - t).abs() <= error_bound(t, scheme)).all()


def test_head_sizes_per_scheme():
    # docs/design.md: a 96 -> 1500 fp32 head is (96 + 1) * 1500 * 4 B = 568.4 KB.
    size = {s: payload_nbytes((1500, 96), s) + payload_nbytes((1500,), s) for s in SCHEMES}
    assert size["fp32"] == (96 + 1) * 1500 * 4
    assert round(size["fp32"] / 1024, 1) == 568.4
    assert size["fp16"] * 2 == size["fp32"]
    assert size["fp32"] / size["int8"] >= 3.9
    assert size["fp32"] / size["nf4"] >= 7.0


def test_invalid_inputs_raise_value_error():
    with pytest.raises(ValueError, match="scheme"):
        quantise(torch.ones(3), "int4")
    with pytest.raises(ValueError, match="blocksize"):
        quantise(torch.ones(3), "int8", blocksize=100)
    with pytest.raises(ValueError, match="finite"):
        quantise(torch.tensor([1.0, float("nan")]), "nf4")
    with pytest.raises(ValueError, match="fp16"):
        quantise(torch.tensor([1e6]), "fp16")
    with pytest.raises(ValueError, match="float"):
        quantise(torch.arange(3), "fp32")
    parts = quantise(torch.ones(100), "int8")
    parts["codes"] = parts["codes"][:-1]
    with pytest.raises(ValueError, match="codes"):
        dequantise(parts, "int8", (100,))
