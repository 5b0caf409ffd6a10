"""f_h's output layer when serving (``serve_dtype``): fp32 as trained, bf16, or int8.

The layer is 96 -> 97·V (14 M weights at V = 1500) and memory-bound: per batch its weights are read
once and its (B, 97·V) fp32 output written once. Both low-precision forms keep the output fp32 (the
wire's fp32 answer) and accumulate in fp32 / int32:

* ``bf16`` — weights and activations rounded to bf16, one oneDNN GEMM, the result cast to fp32.
* ``int8`` — weights per output channel symmetric int8 (scale ``max |w_o| / 127``), activations int8
  per *row* (device): each row is divided by its own ``s = max |x|``, two constant columns ``+1, -1``
  (with zero weights) are appended so that the quantiser's range is ``[-1, 1]`` in every batch, and
  ``torch.ops.quantized.linear_dynamic`` (fbgemm / oneDNN, VNNI) runs one int8 GEMM with int32
  accumulation; ``s · acc + b`` (one fused pass, fp32 bias) gives the row back. Fixing the range is
  what makes a device's head independent of the other uploads in its batch (bit-exact, tested):
  the dynamic quantiser's per-tensor range would otherwise be set by the batch's largest row, so a
  device's answer would depend on — and leak something about — strangers' uploads. It costs one
  pass over the output (measured in ``benchmarks/results/serve_int8.md``). Off the CPU (or where the quantized
  engine cannot prepack the layer) the same scheme — int8 weight codes, per-row symmetric int8
  activations — runs as an fp32 GEMM over the integer codes (its sums are exact below 2^24, i.e.
  for K < 1040): the same error bound, no speed gain. The prepack takes a ``qint8`` tensor, a form
  torch marks deprecated (pytorch#184982; its warning is silenced here); torch is pinned to 2.13
  and ``tests/methods/test_serve_int8.py`` fails if the engine path goes.

Training never sees these copies: they are made under ``torch.no_grad`` for serving and remade
whenever the fp32 weights change (:class:`ServedLinear`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CPUINFO", "INT8_ENGINES", "SERVE_DTYPES", "Int8Weights", "ServedLinear", "by_batch", "cpuinfo", "int8_linear", "pack_int8", "prepack_int8"]

SERVE_DTYPES = ("fp32", "bf16", "int8")
#: (smallest batch, quantized engine) for the int8 GEMM, from benchmarks/results/serve_int8*.md:
#: fbgemm (``x86``) is faster at batch 8, oneDNN at 32 and 64 (where fbgemm's int32 scratch also
#: doubles the page faults), the two even at 1. A build without one of them uses the other.
INT8_ENGINES = ((1, "x86"), (16, "onednn"))
_TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class Int8Weights:
    """``codes (O, K)`` int8 and ``scale (O,)`` fp32 (``w ≈ codes · scale``), the fp32 ``bias (O,)``
    and, on the CPU, ``packed``: ``(smallest batch, prepacked [codes | 0 0])`` per quantized engine."""

    codes: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor
    packed: tuple[tuple[int, object], ...] = ()

    def pack_for(self, batch: int) -> object | None:
        """The prepacked weights for a batch of ``batch`` rows (None: the fp32 GEMM over the codes)."""
        return by_batch(self.packed, batch)


def by_batch(table: tuple[tuple[int, object], ...], batch: int) -> object | None:
    """The entry of ``(smallest batch, value)`` pairs (ascending) for ``batch``: the last whose smallest
    batch it reaches, else the first; None for an empty table."""
    chosen = None
    for smallest, value in table:
        if batch >= smallest or chosen is None:
            chosen = value
    return chosen


def pack_int8(weight: torch.Tensor, bias: torch.Tensor | None,
              engines: tuple[tuple[int, str], ...] = INT8_ENGINES) -> Int8Weights:
    """Per-output-channel symmetric int8 copy of a ``Linear``'s ``weight (O, K)`` (and its fp32 bias)."""
    w = weight.detach().float()
    scale = w.abs().amax(1) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: codes 0, any scale
    codes = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    b = torch.zeros(w.shape[0], device=w.device) if bias is None else bias.detach().float()
    packed: list[tuple[int, object]] = []
    if w.device.type == "cpu":  # the range columns weigh 0; the bias is added after the row scale
        padded = torch.cat([codes.float() * scale[:, None], w.new_zeros(w.shape[0], 2)], 1)
        for smallest, engine in engines:
            p = prepack_int8(padded, scale, engine=engine)
            if p is not None:
                packed.append((smallest, p))
    return Int8Weights(codes, scale, b, tuple(packed))


def prepack_int8(weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 engine: str | None = None) -> object | None:
    """``engine``'s (default: the current one) prepacked per-channel int8 ``weight (O, K)`` (codes
    ``round(w / scale)``) for ``torch.ops.quantized.linear_dynamic``, which runs it whatever engine is
    current then; None where this build has no such engine or it refuses the layer."""
    before = torch.backends.quantized.engine
    if engine is not None and engine not in torch.backends.quantized.supported_engines:
        return None
    try:
        if engine is not None:
            torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation.*deprecated")
            q = torch.quantize_per_channel(weight, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0,
                                           torch.qint8)
        return torch.ops.quantized.linear_prepack(q, bias)
    except RuntimeError:
        return None
    finally:
        torch.backends.quantized.engine = before


#: where :func:`cpuinfo` reads the CPU's model and flags
CPUINFO = Path("/proc/cpuinfo")


def cpuinfo() -> tuple[str | None, frozenset[str]] | None:
    """The first CPU's model name and flags in :data:`CPUINFO`; None where it cannot be read (not Linux).
    Decides :data:`REDUCE_RANGE`, and every benchmark result records it (``paramcast.bench.report.environment``)."""
    model, flags = None, frozenset()
    try:
        with CPUINFO.open() as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        return None
    return model, flags


def _reduce_range() -> bool:
    """True where the CPU has no VNNI (AVX2 only, e.g. these AMD EPYC machines): there the int8 GEMM
    multiplies u8 activations by s8 weights with ``vpmaddubsw``, whose int16 pair sums saturate
    (2 * 255 * 127 > 32767) and return a wrong head (measured: 28 % of max |W| off); 7-bit activations
    (``reduce_range``, PyTorch's own x86 default) cannot saturate, at half the activation resolution."""
    info = cpuinfo()
    return info is None or not ({"avx512_vnni", "avx_vnni", "amx_int8"} & info[1])


#: whether :func:`int8_linear` quantises activations to 7 bits (:func:`_reduce_range`)
REDUCE_RANGE = _reduce_range()


def int8_linear(x: torch.Tensor, w: Int8Weights) -> torch.Tensor:
    """``x (B, K)`` fp32 through the int8 layer -> ``(B, O)`` fp32; row ``i`` depends on ``x[i]`` only."""
    x = x.float()
    s = x.abs().amax(1, keepdim=True).clamp_min(_TINY)                      # (B, 1): each row's own scale
    packed = w.pack_for(x.shape[0])
    if packed is None:                                                        # off the CPU: same codes, fp32 GEMM
        q = torch.round(x / s * 127).clamp_(-127, 127)
        acc = q @ w.codes.T.float()
        return torch.addcmul(w.bias, acc, s * w.scale / 127)
    rng = x.new_tensor([[1.0, -1.0]]).expand(x.shape[0], 2)
    acc = torch.ops.quantized.linear_dynamic(torch.cat([x / s, rng], 1), packed, REDUCE_RANGE)
    return torch.addcmul(w.bias, acc, s, out=acc)


def _version(t: torch.Tensor | None) -> tuple | None:
    """Where a tensor's values live and how often they were changed in place (inference tensors,
    made under ``torch.inference_mode``, keep no counter: their storage must do)."""
    if t is None:
        return None
    return t.data_ptr(), None if t.is_inference() else t._version


class ServedLinear:
    """The serving copy of one ``nn.Linear`` in ``dtype``, remade when its weights change (their
    storage or version), so a method trained or loaded after the first call serves its new weights."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._copy: object = None

    def __call__(self, linear: torch.nn.Linear, x: torch.Tensor, dtype: str) -> torch.Tensor:
        if dtype == "fp32":
            return linear(x)
        key = (dtype, *(_version(t) for t in (linear.weight, linear.bias)))
        if self._key != key:
            with torch.no_grad():
                w, b = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
                self._copy = pack_int8(w, b) if dtype == "int8" else (w.bfloat16(), None if b is None else b.bfloat16())
            self._key = key
        if dtype == "int8":
            return int8_linear(x, self._copy)
        return torch.nn.functional.linear(x.bfloat16(), *self._copy).float()
