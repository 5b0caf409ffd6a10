"""Predictive entropy and Monte-Carlo-dropout variance (CD-CCA's UTS, eq. 2-3; TENT's objective)."""

from __future__ import annotations

import torch

__all__ = ["entropy", "mc_dropout_variance"]


def entropy(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` along ``dim``: ``-sum_j p_j log p_j`` (eq. 2).

    Logits of ``-inf`` (masked classes) contribute 0, as ``0 log 0 = 0``.
    """
    logp = logits.log_softmax(dim)
    return -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(dim)


def mc_dropout_variance(passes: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``1/M sum_m (F_m - mean_m F)^2`` averaged over channels.

    ``passes`` (M, ..., C): M stochastic forward passes of token features -> (...) one variance per
    token. The seed's ``1/M`` (population variance, not ``1/(M-1)``) is kept.
    """
    return passes.var(dim=0, unbiased=False).mean(-1)
