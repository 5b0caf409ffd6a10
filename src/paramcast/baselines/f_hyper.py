"""F-hyper (the seed's ablation, §4.4.1): the FDA hypernetwork without the adaptive generator (ADR).

Trained like CDC-MMPG but the hypernetwork is fed F_g, the mean of D sampled frames (eq. 5); at
inference the device uploads the same one frame feature, which goes to the hypernetwork directly.
"""

from __future__ import annotations

from typing import Any

from paramcast.methods.cdc_mmpg.model import CDCMMPG
from paramcast.registry import register

__all__ = ["FHyper"]


@register("f-hyper")
class FHyper(CDCMMPG):
    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"use_adr": False}
