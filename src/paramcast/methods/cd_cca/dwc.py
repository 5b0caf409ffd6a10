"""Dynamic Weight update Compression (DWC), the cloud -> device downlink of CD-CCA (eq. 7-8).

``delta = updated - base`` for the adapter parameters (eq. 7); the *significant* part is kept: the
tensors are ranked by squared update per transmitted byte (``||delta||^2 / bytes``, a greedy knapsack)
and taken in that order until they hold ``energy`` of the total squared update, skipping any that
would exceed ``budget`` (a fraction of the bytes of the whole delta in fp16); the rest waits (it stays
in the next round's delta, because the cloud always diffs against what the device really holds:
error feedback). Kept tensors are quantised (NF4 by default, QLoRA's 4-bit NormalFloat, as in the
seed) by :mod:`paramcast.compression`; the device sets ``base + dequantise(delta)`` (eq. 8).

Reading of "dynamic" / "significant" (the seed gives no selection rule): the update is ranked per
tensor, so no per-element index has to travel; the byte budget makes the downlink size a promise
(``budget=1/6``: at most a sixth of an fp16 delta, whatever the adapter) and the energy fraction
stops early when a few tensors carry the update. Ranking per byte rather than by raw energy keeps
more of the update within a budget, because tensors differ in size (a 64-wide bias against a
LoRA matrix) and small ones pay a fixed quantisation overhead.

Reading of eq. 8: the seed says the device "circumvents the need for dequantization"; the device's
parameters are float, so ``Theta_base + Theta_compressed`` only type-checks with the dequantised delta.
We dequantise (exactly what the wire does on receipt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paramcast import compression

__all__ = ["DWCConfig", "DynamicWeightCompression"]


@dataclass(frozen=True)
class DWCConfig:
    scheme: str = "nf4"            # how kept deltas travel: fp32 | fp16 | int8 | nf4
    energy: float = 0.9            # stop once the kept tensors hold this fraction of sum ||delta||^2 (1.0 = all)
    budget: float | None = 1 / 6   # at most this fraction of the whole delta's fp16 bytes (None: no cap)
    blocksize: int = 64            # int8 / NF4 block

    def __post_init__(self) -> None:
        if self.scheme not in compression.SCHEMES:
            raise ValueError(f"scheme={self.scheme!r}: use one of {compression.SCHEMES}")
        if not 0 < self.energy <= 1:
            raise ValueError(f"energy={self.energy}: use a fraction in (0, 1]; 1.0 sends every changed tensor")
        if self.budget is not None and not self.budget > 0:
            raise ValueError(f"budget={self.budget}: use a positive fraction of the fp16 delta's bytes, or None")


class DynamicWeightCompression:
    def __init__(self, cfg: DWCConfig):
        self.cfg = cfg

    def select(self, deltas: dict[str, torch.Tensor]) -> list[str]:
        """Names of the significant deltas: largest ``||delta||^2`` per byte first, until ``energy`` of the
        total is kept; a tensor that would overrun ``budget`` is skipped (a smaller one may still fit)."""
        sq = {k: float(v.double().pow(2).sum()) for k, v in deltas.items()}
        total = sum(sq.values())
        if total == 0:
            return []
        cost = {k: compression.payload_nbytes(tuple(v.shape), self.cfg.scheme, self.cfg.blocksize)
                for k, v in deltas.items()}
        cap = float("inf") if self.cfg.budget is None else self.cfg.budget * 2 * sum(v.numel() for v in deltas.values())
        kept, acc, spent = [], 0.0, 0
        for name in sorted(sq, key=lambda k: (sq[k] / cost[k], k), reverse=True):
            if acc >= self.cfg.energy * total or sq[name] == 0:
                break
            if spent + cost[name] > cap:
                continue
            kept.append(name)
            acc, spent = acc + sq[name], spent + cost[name]
        return kept

    def compress(self, updated: dict[str, torch.Tensor], base: dict[str, torch.Tensor]
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Eq. 7: the significant fp32 deltas ``updated - base`` that go into the payload (the wire
        quantises them with ``scheme``), and the same deltas as the device will receive them
        (quantised and dequantised), which the cloud adds to its copy of the device's weights."""
        deltas = {k: (updated[k] - base[k]).detach().float().cpu() for k in updated}  # CPU: they go on the wire
        sent, received = {}, {}
        for name in self.select(deltas):
            d = deltas[name]
            parts = compression.quantise(d, self.cfg.scheme, self.cfg.blocksize)
            sent[name] = d
            received[name] = compression.dequantise(parts, self.cfg.scheme, tuple(d.shape), self.cfg.blocksize)
        return sent, received

    def nbytes(self, deltas: dict[str, torch.Tensor]) -> int:
        """Tensor bytes of ``deltas`` as they travel (shape formula of :mod:`paramcast.compression`)."""
        return sum(compression.payload_nbytes(tuple(d.shape), self.cfg.scheme, self.cfg.blocksize)
                   for d in deltas.values())

    @staticmethod
    def apply(params: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor]) -> None:
        """Eq. 8 on the device: ``p <- p + delta`` in place for every received delta."""
        with torch.no_grad():
            for name, d in deltas.items():
                params[name].add_(d.to(params[name].device, params[name].dtype))
