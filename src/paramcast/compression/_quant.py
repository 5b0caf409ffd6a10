"""Blockwise quantisers for the downlink and uplink: fp32, fp16, int8 and NF4.

docs/design.md: "zstd barely compresses fp32 weights (ratio 0.93): quantisation is what shrinks payloads",
and bitsandbytes 0.50 does NF4 and blockwise int8 on CPU, so the int8 and NF4 codes come from
``bitsandbytes.functional`` (``quantize_blockwise`` with its signed dynamic map, ``quantize_4bit``
with ``quant_type="nf4"``, the 4-bit NormalFloat of QLoRA that CD-CCA's DWC ships deltas in).

Layout of the parts that travel, for a tensor of ``n`` elements split into ``nb = ceil(n / blocksize)``
blocks (every part is a plain 1-D tensor safetensors can store; the original shape travels in the
wire metadata and is passed back to :func:`dequantise`):

=========  ===================================================================================
fp32       ``values``        fp32, the original shape
fp16       ``values``        fp16, the original shape
int8       ``codes``         uint8 (n,)            one byte per element, index into the dynamic map
nf4        ``codes``         uint8 (ceil(n / 2),)  two 4-bit NF4 indices per byte, high nibble first
int8, nf4  ``absmax_codes``  uint8 (nb,)           per-block absmax, itself int8-quantised ...
           ``absmax_scale``  fp32 (ceil(nb / 256),) ... in blocks of 256 (QLoRA's double
           ``absmax_offset`` fp32 (1,)              quantisation), after subtracting their mean
=========  ===================================================================================

Why double quantisation: with fp32 absmax a 64-element block costs 4 extra bytes, so a 96 -> 1500 head
in int8 is only 3.76x smaller than fp32; quantising the absmax (as QLoRA does) brings it to 3.94x
(NF4: 7.75x) for an extra error of at most ``max|absmax - mean| / 142`` per element (see
:func:`error_bound`).

bitsandbytes quirk (0.50.2, CPU): ``dequantize_4bit`` of a 2-D shape whose last dimension is not a
multiple of ``blocksize`` (e.g. (1500, 96) with blocksize 64) uses per-row blocks while
``quantize_4bit`` uses blocks over the flattened tensor, so the round trip is wrong by up to the
tensor's range. Everything here is flattened to 1-D before quantising and reshaped after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "BLOCKSIZES",
    "NF4_LEVELS",
    "SCHEMES",
    "dequantise",
    "error_bound",
    "part_specs",
    "payload_nbytes",
    "quantise",
]

SCHEMES: tuple[str, ...] = ("fp32", "fp16", "int8", "nf4")
BLOCKSIZES: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # what bitsandbytes accepts

# QLoRA (Dettmers et al. 2023), appendix E: the 16 NormalFloat-4 levels. A test checks that
# bitsandbytes uses exactly these.
NF4_LEVELS: tuple[float, ...] = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip

_ABSMAX_BLOCKSIZE = 256  # blocks of per-block absmax values (QLoRA's double quantisation)
_FP16_MAX = 65504.0
# bitsandbytes' CPU int8 kernel searches the dynamic map approximately and is sometimes one level
# off the nearest one: measured worst case 1.002 x half the largest gap (NF4 uses exact midpoints).
_INT8_SEARCH_SLACK = 1.01
_FP32_TINY = torch.finfo(torch.float32).tiny  # subnormal inputs are flushed to zero (see _flush)


def _bnb():
    """bitsandbytes.functional, imported on first use (the import costs ~2 s on these CPUs)."""
    try:
        import bitsandbytes.functional as bnbf
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError(
            "int8/nf4 quantisation needs bitsandbytes: pip install 'bitsandbytes>=0.45'"
        ) from exc
    return bnbf


def _check(scheme: str, blocksize: int) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantisation scheme {scheme!r}; choose one of {SCHEMES}")
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize not in BLOCKSIZES:
        raise ValueError(f"blocksize must be one of {BLOCKSIZES}, got {blocksize!r}")


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def part_specs(
    shape: Sequence[int], scheme: str, blocksize: int = 64
) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every part :func:`quantise` produces for a tensor of ``shape``.

    The single description of the layout: :func:`payload_nbytes` sums it and the wire decoder checks
    received parts against it before any of them reaches bitsandbytes.
    """
    _check(scheme, blocksize)
    shape = tuple(int(d) for d in shape)
    if scheme == "fp32":
        return {"values": (torch.float32, shape)}
    if scheme == "fp16":
        return {"values": (torch.float16, shape)}
    n = _numel(shape)
    nb = -(-n // blocksize)
    codes = n if scheme == "int8" else -(-n // 2)
    return {
        "codes": (torch.uint8, (codes,)),
        "absmax_codes": (torch.uint8, (nb,)),
        "absmax_scale": (torch.float32, (-(-nb // _ABSMAX_BLOCKSIZE),)),
        "absmax_offset": (torch.float32, (1,)),
    }


def payload_nbytes(shape: Sequence[int], scheme: str, blocksize: int = 64) -> int:
    """Bytes of tensor data that travel for one tensor of ``shape`` (no container header).

    E.g. a 96 -> 1500 head (weight (1500, 96) + bias (1500,)) in fp32 is (96 + 1) * 1500 * 4 B =
    568.4 KB, docs/design.md's downlink figure.
    """
    return sum(
        _numel(s) * torch.empty((), dtype=dt).element_size()
        for dt, s in part_specs(shape, scheme, blocksize).values()
    )


def _flush(x: torch.Tensor) -> torch.Tensor:
    # bitsandbytes scales by 1 / absmax, which overflows for a subnormal absmax and maps 0 to -0.99.
    return torch.where(x.abs() < _FP32_TINY, torch.zeros_like(x), x)


def _quantise_absmax(absmax: torch.Tensor) -> dict[str, torch.Tensor]:
    bnbf = _bnb()
    offset = absmax.mean().reshape(1)  # (1,)
    codes, state = bnbf.quantize_blockwise(_flush(absmax - offset), blocksize=_ABSMAX_BLOCKSIZE)
    return {"absmax_codes": codes, "absmax_scale": state.absmax.float(), "absmax_offset": offset}


def _dequantise_absmax(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    bnbf = _bnb()
    dev = bnbf.dequantize_blockwise(
        parts["absmax_codes"],
        absmax=parts["absmax_scale"],
        code=bnbf.create_dynamic_map(signed=True),
        blocksize=_ABSMAX_BLOCKSIZE,
    )  # (nb,)
    return dev.float() + parts["absmax_offset"]


def quantise(t: torch.Tensor, scheme: str, blocksize: int = 64) -> dict[str, torch.Tensor]:
    """Encode a float tensor into the parts that travel (layout in the module docstring).

    Raises ``ValueError`` for an unknown scheme or blocksize, a non-float, empty or non-finite tensor,
    or (fp16) a value beyond fp16's range — send such a tensor as fp32.
    """
    _check(scheme, blocksize)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"quantise expects a float tensor, got {type(t).__name__} {getattr(t, 'dtype', '')}")
    if t.numel() == 0:
        raise ValueError("quantise expects a non-empty tensor")
    x = t.detach().to("cpu", torch.float32).contiguous()
    lo, hi = x.numpy().min(), x.numpy().max()  # NaN propagates; numpy: no OpenMP team per encoding thread
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("quantise expects finite values (found NaN or Inf)")
    if scheme == "fp32":
        return {"values": x}  # no copy: may share memory with ``t`` (the wire serialises it at once)
    if scheme == "fp16":
        if float(x.abs().max()) > _FP16_MAX:
            raise ValueError(f"|value| > {_FP16_MAX} overflows fp16; send this tensor as fp32")
        return {"values": x.half()}
    bnbf = _bnb()
    flat = _flush(x.reshape(-1))  # (n,)  flattened: see the quirk in the module docstring
    if scheme == "int8":
        codes, state = bnbf.quantize_blockwise(flat, blocksize=blocksize)  # (n,) uint8, absmax (nb,)
    else:
        packed, state = bnbf.quantize_4bit(flat, blocksize=blocksize, quant_type="nf4")  # (ceil(n/2), 1)
        codes = packed.reshape(-1)
    return {"codes": codes.contiguous(), **_quantise_absmax(state.absmax.float())}


def dequantise(
    parts: dict[str, torch.Tensor], scheme: str, shape: tuple[int, ...], blocksize: int = 64
) -> torch.Tensor:
    """Inverse of :func:`quantise`: the fp32 tensor of ``shape``.

    Checks every part's name, dtype and shape against :func:`part_specs` first (``ValueError``
    otherwise), so malformed parts never reach the native kernels.
    """
    specs = part_specs(shape, scheme, blocksize)
    if set(parts) != set(specs):
        raise ValueError(f"{scheme} parts must be {sorted(specs)}, got {sorted(parts)}")
    for name, (dtype, part_shape) in specs.items():
        p = parts[name]
        if not isinstance(p, torch.Tensor) or p.dtype != dtype or tuple(p.shape) != part_shape:
            got = (getattr(p, "dtype", type(p).__name__), tuple(getattr(p, "shape", ())))
            raise ValueError(f"{scheme} part {name!r} must be {dtype} {part_shape}, got {got}")
    shape = tuple(int(d) for d in shape)
    if scheme in ("fp32", "fp16"):
        return parts["values"].float().clone()
    bnbf = _bnb()
    n = _numel(shape)
    absmax = _dequantise_absmax(parts)  # (nb,)
    codes = parts["codes"].contiguous()
    if scheme == "int8":
        flat = bnbf.dequantize_blockwise(
            codes, absmax=absmax, code=bnbf.create_dynamic_map(signed=True), blocksize=blocksize
        )  # (n,)
    else:
        state = bnbf.QuantState(
            absmax=absmax, shape=torch.Size([n]), dtype=torch.float32, blocksize=blocksize, quant_type="nf4"
        )
        flat = bnbf.dequantize_4bit(codes.reshape(-1, 1), state)  # (1, n) or (n,)
    return flat.float().reshape(shape)


def error_bound(t: torch.Tensor, scheme: str, blocksize: int = 64) -> torch.Tensor:
    """Per-element bound on ``|dequantise(quantise(t)) - t|``, computed from ``t`` alone (no bitsandbytes).

    * fp32: 0.
    * fp16: ``|t| * 2**-11 + 2**-25`` (round to nearest, 11-bit significand; fp16 subnormal spacing 2**-24).
    * int8: ``g8 * absmax_block + g8 * dev_group`` where ``g8 = 0.00703`` is half the largest gap of the
      signed dynamic map, times 1.01 because bitsandbytes' CPU kernel is not always exactly nearest
      (so about ``absmax / 141``, inside the "absmax / 127" of a linear int8 grid) and ``dev_group = max |absmax - mean(absmax)|`` over the 256-block group holding the
      element: the second term is the error of the double-quantised absmax.
    * nf4: the same with ``g4 = (1 - 0.6962) / 2 = 0.1519``, half the largest gap between NF4 levels.

    Plus float rounding (``1e-6 * absmax``) and the flush of subnormal inputs (``2**-126``).
    """
    _check(scheme, blocksize)
    x = t.detach().to("cpu", torch.float32)
    if scheme == "fp32":
        return torch.zeros_like(x)
    if scheme == "fp16":
        return x.abs() * 2.0**-11 + 2.0**-25
    dynamic_map = _bnb().create_dynamic_map(signed=True).sort().values  # (256,)
    int8_half_gap = float(dynamic_map.diff().max()) / 2 * _INT8_SEARCH_SLACK
    half_gap = int8_half_gap if scheme == "int8" else float(torch.tensor(NF4_LEVELS).diff().max()) / 2
    flat = _flush(x.reshape(-1))  # (n,)
    n = flat.numel()
    nb = -(-n // blocksize)
    absmax = torch.nn.functional.pad(flat.abs(), (0, nb * blocksize - n)).view(nb, blocksize).amax(1)  # (nb,)
    dev = (absmax - absmax.mean()).abs()
    ng = -(-nb // _ABSMAX_BLOCKSIZE)
    dev_group = torch.nn.functional.pad(dev, (0, ng * _ABSMAX_BLOCKSIZE - nb)).view(ng, -1).amax(1)  # (ng,)
    per_block = absmax * (half_gap + 1e-6) + dev_group.repeat_interleave(_ABSMAX_BLOCKSIZE)[:nb] * (
        int8_half_gap + 1e-6
    )  # (nb,)
    return (per_block.repeat_interleave(blocksize)[:n] + 2.0 * _FP32_TINY).reshape(x.shape)
