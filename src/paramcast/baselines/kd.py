"""Feature-distillation baselines of CD-CCA's tables: PKD and ChannelWiseDivergence (CWD).

Same cloud-device loop as CD-CCA (same uploads, same adapters, same DWC downlink); only the cloud's
objective differs: the PKD or CWD feature loss (:mod:`paramcast.losses.kd`) replaces AKD's
``L_query`` and ``L_repr``, and no pseudo-label cross-entropy is used. Reading of the seed: its
Table 3 credits pseudo-labels alone with +3.3 DA while its PKD/CWD rows sit at source-only level,
so those baselines distil features only.
"""

from __future__ import annotations

import dataclasses

from paramcast.methods.cd_cca.method import CDCCA, CDCCAConfig, Pretrained

__all__ = ["CWD", "PKD"]


def _kd_config(cfg: CDCCAConfig | None, kind: str) -> CDCCAConfig:
    cfg = cfg or CDCCAConfig()
    return dataclasses.replace(cfg, akd=dataclasses.replace(cfg.akd, feature_loss=kind, use_pl=False))


class PKD(CDCCA):
    name = "pkd"

    def __init__(self, pre: Pretrained, cfg: CDCCAConfig | None = None):
        super().__init__(pre, _kd_config(cfg, "pkd"))


class CWD(CDCCA):
    name = "cwd"

    def __init__(self, pre: Pretrained, cfg: CDCCAConfig | None = None):
        super().__init__(pre, _kd_config(cfg, "cwd"))
