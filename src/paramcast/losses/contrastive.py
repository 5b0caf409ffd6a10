"""Contrastive losses of StableSynthNet's Driver Contrastive Training and Offset-Driver Separation.

* :func:`margin_info_nce`      — eq. 5–6, per-sample InfoNCE over label-defined positive / negative
  sets with an additive angular margin ``m`` on the positive pairs and temperature ``T``.
* :func:`per_label_variance`   — eq. 8's ``Var(L^i)``: the variance of the per-sample losses within
  each positive set (one value per sample, the variance of its label's set).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["margin_info_nce", "per_label_variance"]


def margin_info_nce(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                    temperature: float = 0.1, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5–6 per sample: ``L(i) = -log f_pos / (f_pos + f_neg)``.

    ``f_pos = Σ_{j ∈ PS_i} exp(cos(θ_ij + m) / T)``, ``f_neg = Σ_{g ∈ NG_i} exp(cos θ_ig / T)``, with
    ``θ_ij = arccos`` of the cosine similarity of rows i and j and the sets taken over the batch
    without i itself. embeddings (N, E), labels (N,) int (negative = no label: in no set) ->
    ``losses (N,)`` and ``valid (N,) bool`` (rows with a label and at least one positive; the loss of
    the other rows is 0 and must not be used).

    Numerical choices: the cosine is clamped to ``[-1 + eps, 1 - eps]`` before ``arccos`` (its
    derivative is infinite at ±1), and ``θ + m`` is capped at π so that the margin can only lower
    a positive pair's similarity (past π, ``cos`` would rise again and reward pushing positives apart).
    """
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings (N, E) and labels (N,) expected, got {tuple(embeddings.shape)} and "
                         f"{tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: must be > 0")
    z = F.normalize(embeddings, dim=-1)
    cos = (z @ z.T).clamp(-1 + eps, 1 - eps)                                     # (N, N)
    theta = torch.arccos(cos)
    cos_pos = torch.cos((theta + margin).clamp(max=math.pi))
    has = labels >= 0
    same = (labels[:, None] == labels[None, :]) & has[:, None] & has[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos = same & ~eye                                                            # PS_i
    neg = ~same & has[:, None] & has[None, :]                                    # NG_i
    logits = torch.where(pos, cos_pos, cos) / temperature                        # (N, N)
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = logits.masked_fill(~pos, neg_inf).logsumexp(dim=1)                 # log f_pos
    log_all = logits.masked_fill(~(pos | neg), neg_inf).logsumexp(dim=1)         # log (f_pos + f_neg)
    valid = pos.any(dim=1)
    losses = torch.where(valid, log_all - log_pos, torch.zeros_like(log_pos))
    return losses, valid


def per_label_variance(losses: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``Var(L^i)`` of eq. 8 for every row: the (population) variance of the valid losses sharing its label.

    losses (N,), labels (N,), valid (N,) bool -> (N,); rows that are not valid get 0. A label with a
    single valid row has variance 0.
    """
    lab = torch.where(valid, labels, torch.full_like(labels, -1))
    same = (lab[:, None] == lab[None, :]) & valid[:, None] & valid[None, :]      # (N, N)
    w = same.to(losses.dtype)
    n = w.sum(1).clamp(min=1)
    mean = (w @ losses) / n
    var = (w * (losses[None, :] - mean[:, None]).pow(2)).sum(1) / n
    return torch.where(valid, var, torch.zeros_like(var))
