"""The VAE losses of CDC-MMPG's AnchorFrame Distribution Reasoner (Φ's re-normalisation, eq. 16, is
:func:`paramcast.models.heads.adain`).

* :func:`kl_standard_normal`  — eq. 14, ``D_KL(N(mu, sigma) || N(0, I))``.
* :func:`adr_loss`            — eq. 15, 17, 18: ``L = L_ag + L_rec + L_KL``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["LAM_ON", "adr_loss", "kl_standard_normal"]

#: Where eq. 17's λ goes: on MSE(F_a, F_g) ("global", as printed) or on MSE(F_a, F_m^i) ("anchor").
LAM_ON = ("global", "anchor")


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. 14: ``D_KL(N(mu, exp(logvar)) || N(0, I))``, averaged over latent dimensions and the batch.

    mu, logvar (B, Z) -> scalar. Averaging over Z (not summing) keeps the KL on the same per-element
    scale as the two MSE terms it is added to in eq. 18, which the seed adds with weight 1.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def adr_loss(generated: torch.Tensor, reconstructed: torch.Tensor, global_feature: torch.Tensor,
             anchor: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, lam: float = 0.1,
             lam_on: str = "global") -> dict[str, torch.Tensor]:
    """Eq. 15, 17, 18 for a batch: returns ``{"ag", "rec", "kl", "total"}`` (scalars).

    generated   F_a (B, C)  adaptive generator output Φ(F̂, F_m^i)
    reconstructed F̂ (B, C) VAE decoder output
    global_feature F_g (B, C) mean of D sampled frames' features (the reconstruction target)
    anchor      F_m^i (B, C) the one anchor-frame feature the VAE encodes

    ``L_rec = MSE(F̂, F_g)`` (eq. 15); eq. 17 in one of two placements of λ (``lam_on``):

    * ``"global"`` (default, the equation as printed, "λMSE(F_a, F) + MSE(F_a, F_m)"):
      ``L_ag = λ · MSE(F_a, F_g) + MSE(F_a, F_m^i)``.
    * ``"anchor"`` (paramcast's reading): ``L_ag = MSE(F_a, F_g) + λ · MSE(F_a, F_m^i)``. F_a
      *replaces* F_g as the hypernetwork's input (eq. 11), so matching F_g would carry the unit
      weight and the λ = 0.1 term keep F_a close to the real uploaded frame; the printed weighting
      trains F_a mostly to copy the anchor, undoing what the reasoner adds.
    """
    if lam_on not in LAM_ON:
        raise ValueError(f"lam_on={lam_on!r}: use one of {LAM_ON}")
    rec = F.mse_loss(reconstructed, global_feature)
    to_global, to_anchor = F.mse_loss(generated, global_feature), F.mse_loss(generated, anchor)
    ag = lam * to_global + to_anchor if lam_on == "global" else to_global + lam * to_anchor
    kl = kl_standard_normal(mu, logvar)
    return {"ag": ag, "rec": rec, "kl": kl, "total": ag + rec + kl}
