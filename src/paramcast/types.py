"""What crosses the network between a device and the cloud.

Three frozen payloads, shared by every method (docs/design.md, "one interface, one direction of flow"):

* :class:`Upload`      device -> cloud: one frame feature (CDC-MMPG, StableSynthNet, DUET: a few
  frames) or the uncertain tokens UTS kept (CD-CCA).
* :class:`HeadParams`  cloud -> device: a generated linear layer ``weight (V, H)``, ``bias (V,)``.
* :class:`WeightDelta` cloud -> device: ``updated - base`` for named parameters (CD-CCA's DWC).

The payloads hold plain fp32/int64 tensors. How they travel (fp32, fp16, blockwise int8, NF4) is
recorded in ``quant`` and decided by :mod:`paramcast.wire`, the only module that turns payloads into
bytes; on the receiving side ``quant`` says how the (already dequantised) values were carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

__all__ = ["QUANTS", "HeadParams", "Quant", "Update", "Upload", "WeightDelta"]

Quant = Literal["fp32", "fp16", "int8", "nf4"]
QUANTS: tuple[str, ...] = ("fp32", "fp16", "int8", "nf4")


@dataclass(frozen=True)
class _Meta:
    device_id: str
    method: str
    task: str
    model_version: str


@dataclass(frozen=True)
class Upload(_Meta):
    """Device -> cloud summary of what the device sees.

    ``features``  (N, C) float: N = 1 for one anchor-frame feature, N = D frames for DUET,
                  N = kept tokens for UTS.
    ``positions`` (N,) int64 or None: where each kept token sat in its sample (UTS only).
    ``samples``   (N,) int64 or None: which uploaded sample each kept token came from (UTS only).
    ``text``      (S, L) int64 or None: word ids of the S uploaded samples' questions (UTS only:
                  ``samples`` index its rows), so the whole uplink travels as one message.
    """

    features: torch.Tensor
    positions: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    text: torch.Tensor | None = None
    quant: Quant = "fp32"


@dataclass(frozen=True)
class HeadParams(_Meta):
    """Cloud -> device generated linear layer ``y = x @ weight.T + bias``: weight (V, H), bias (V,)."""

    weight: torch.Tensor
    bias: torch.Tensor
    quant: Quant = "fp32"


@dataclass(frozen=True)
class WeightDelta(_Meta):
    """Cloud -> device compressed weight update: the device sets ``p = base[name] + deltas[name]``.

    ``base_version`` names the device model the deltas were computed against; a device holding
    another version must refuse them.
    """

    deltas: dict[str, torch.Tensor] = field(default_factory=dict)
    base_version: str = ""
    quant: Quant = "fp32"


Update = HeadParams | WeightDelta
