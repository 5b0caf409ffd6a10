"""Feature-distillation baselines of CD-CCA's tables: PKD and ChannelWiseDivergence (CWD).

Same cloud-device loop as CD-CCA (same uploads, same adapters, same DWC downlink); only the cloud's
objective differs: the PKD or CWD feature loss (:mod:`paramcast.losses.kd`) replaces AKD's
``L_query`` and ``L_repr``, and no pseudo-label cross-entropy is used. Reading of the seed: its
Table 3 credits pseudo-labels alone with +3.3 DA while its PKD/CWD rows sit at source-only level,
so those baselines distil features only.
"""

from __future__ import annotations

import dataclasses

from paramcast.methods.cd_cca.method import CDCCA, CDCCAConfig
from paramcast.registry import register

__all__ = ["CWD", "PKD"]


class _FeatureKD(CDCCA):
    feature_loss = "pkd"

    @classmethod
    def settle_config(cls, config: CDCCAConfig) -> CDCCAConfig:
        return dataclasses.replace(config, akd=dataclasses.replace(config.akd, feature_loss=cls.feature_loss,
                                                                   use_pl=False))


@register("pkd")
class PKD(_FeatureKD):
    feature_loss = "pkd"


@register("cwd")
class CWD(_FeatureKD):
    feature_loss = "cwd"
