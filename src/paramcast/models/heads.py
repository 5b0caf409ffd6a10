"""The device model's QA head: a static part and a dynamic last layer whose parameters may come from the cloud.

All-in-One's open-ended QA head is ``Linear(C, C/2) -> LayerNorm -> GELU -> Linear(C/2, V)``
(docs/design.md). CDC-MMPG keeps the first three as the device's *static* part and generates the last
linear layer (``weight (V, C/2)``, ``bias (V,)``) in the cloud (seed eq. 6–7).

:func:`per_sample_linear` applies one generated layer per sample with ``torch.baddbmm``, so a single
forward pass serves a batch drawn from many devices, each with its own head. :func:`adain` is the
channel-wise feature re-normalisation both generators apply to an uploaded feature (CDC-MMPG's Φ,
StableSynthNet's template fusion). :func:`default_device` is paramcast's one "cuda if available".
"""

from __future__ import annotations

import torch
from torch import nn

from paramcast.types import HeadParams

__all__ = ["DeviceModel", "QAHead", "StaticHead", "adain", "default_device", "per_sample_linear", "pool_frames"]


def default_device() -> str:
    """cuda when available, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 16: re-normalise ``content`` to the channel statistics of ``style``.

    ``Φ(F̂, F) = σ(F) · (F̂ − μ(F̂)) / σ(F̂) + μ(F)`` with μ, σ the mean and (biased) standard
    deviation over the last (channel) axis of each feature vector. content, style (..., C) -> (..., C).

    Reading of the garbled eq. 16: the statistics are taken over the C channels of each vector,
    because at inference the cloud holds exactly one uploaded frame feature (C,) — there is no
    spatial axis or batch to pool over, and taking statistics over a batch of uploads would make
    one device's head depend on which other devices were batched with it.
    """
    mu_c, mu_s = content.mean(-1, keepdim=True), style.mean(-1, keepdim=True)
    sd_c = (content.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
    sd_s = (style.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
    return sd_s * (content - mu_c) / sd_c + mu_s


def pool_frames(features: torch.Tensor) -> torch.Tensor:
    """Video-level feature: mean of the per-frame features, (B, T, C) -> (B, C) (All-in-One's pooling)."""
    return features.mean(dim=1) if features.dim() == 3 else features


def per_sample_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``y[g] = x[g] @ weight[g].T + bias[g]`` for every head g in one batched matmul.

    x (G, M, H) or (G, H), weight (G, V, H), bias (G, V) -> (G, M, V) or (G, V).
    """
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(1)                                                   # (G, 1, H)
    y = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))          # (G, M, V)
    return y.squeeze(1) if squeeze else y


class StaticHead(nn.Module):
    """``Linear(C, H) -> LayerNorm -> GELU``: the part of the QA head every device keeps as is."""

    def __init__(self, in_dim: int = 192, hidden: int = 96):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.out_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., H)
        return self.net(x)


class QAHead(nn.Module):
    """All-in-One's full QA head: static part + a plain ``Linear(H, V)`` (source-only, F-linear)."""

    def __init__(self, in_dim: int, num_answers: int, hidden: int | None = None):
        super().__init__()
        self.static = StaticHead(in_dim, hidden or in_dim // 2)
        self.out = nn.Linear(self.static.out_dim, num_answers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, T, C) per-frame or (B, C) pooled -> logits (B, V)."""
        return self.out(self.static(pool_frames(features)))


class DeviceModel(nn.Module):
    """What runs on a device: static head + a dynamic last layer installed from :class:`HeadParams`.

    The frozen encoder is shared and not held here (features arrive pre-computed, or the caller runs
    the encoder first). ``apply`` installs a generated layer; ``forward`` uses it, or, when
    ``weight``/``bias`` are passed, applies one head per sample (many devices in one batch).
    """

    def __init__(self, static: StaticHead, num_answers: int):
        super().__init__()
        self.static = static
        self.num_answers = num_answers
        self.register_buffer("weight", torch.zeros(num_answers, static.out_dim))
        self.register_buffer("bias", torch.zeros(num_answers))
        self.installed = False

    def apply_params(self, params: HeadParams) -> None:
        w, b = params.weight, params.bias
        if tuple(w.shape) != tuple(self.weight.shape) or tuple(b.shape) != tuple(self.bias.shape):
            raise ValueError(f"head params of shape {tuple(w.shape)}/{tuple(b.shape)} do not fit this device "
                             f"model ({tuple(self.weight.shape)}/{tuple(self.bias.shape)}): the cloud and "
                             "the device disagree on the answer vocabulary or the head width")
        self.weight.copy_(w.to(self.weight))
        self.bias.copy_(b.to(self.bias))
        self.installed = True

    def forward(self, features: torch.Tensor, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, T, C) or (B, C); optional per-sample weight (B, V, H), bias (B, V) -> (B, V)."""
        h = self.static(pool_frames(features))                                # (B, H)
        if weight is not None:
            return per_sample_linear(h, weight, bias)
        if not self.installed:
            raise RuntimeError("no head installed: call apply(update) with the cloud's HeadParams first")
        return nn.functional.linear(h, self.weight, self.bias)
