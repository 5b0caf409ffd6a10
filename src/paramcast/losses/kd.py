"""Feature distillation losses of the PKD / CWD baselines (CD-CCA's own eq. 5 is an MSE after AKD's
projection ``phi_q``: :meth:`paramcast.methods.cd_cca.akd.AdapterKD.loss`).

All take token features ``(B, L, C)`` (batch, tokens, channels) with the teacher's and the
(projected) student's channels equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelWiseDivergence", "PKDLoss"]


class PKDLoss(nn.Module):
    """PKD (Cao et al. 2022): standardise every channel over batch and tokens, then ``MSE / 2``.

    Matches mmrazor's ``PKDLoss``: unbiased std, ``+1e-6`` in the denominator. The MSE of two
    standardised maps equals ``1 - Pearson correlation`` per channel, so only the relation between
    tokens is imitated, not the magnitude. With a single row (B * L = 1) the unbiased std is NaN
    (mmrazor returns NaN there); we use the biased one, which makes both maps 0 and the loss 0.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])                      # (B*L, C)
        std = flat.std(0, correction=1 if flat.shape[0] > 1 else 0)
        return (flat - flat.mean(0)) / (std + self.eps)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher (B, L, C) -> scalar."""
        return F.mse_loss(self._norm(student), self._norm(teacher)) / 2


class ChannelWiseDivergence(nn.Module):
    """CWD (Shu et al. 2021): per sample and channel, softmax over the token axis with temperature
    ``tau``; ``tau^2 * KL(teacher || student)`` summed over tokens, averaged over (B, C)."""

    def __init__(self, tau: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau={tau}: the temperature must be > 0")
        self.tau = tau

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher (B, L, C) -> scalar."""
        B, L, C = teacher.shape
        s = student.transpose(1, 2).reshape(-1, L) / self.tau  # (B*C, L)
        t = teacher.transpose(1, 2).reshape(-1, L) / self.tau
        p_t = t.softmax(-1)
        kl = (p_t * (t.log_softmax(-1) - s.log_softmax(-1))).sum()
        return kl * self.tau**2 / (B * C)
