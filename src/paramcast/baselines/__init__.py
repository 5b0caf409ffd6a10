"""Baselines named by the seeds; each registers itself and implements :class:`paramcast.methods.Method`."""

from paramcast.baselines.duet import DUET
from paramcast.baselines.f_hyper import FHyper
from paramcast.baselines.finetune import FineTuning, FLinear
from paramcast.baselines.kd import CWD, PKD
from paramcast.baselines.source_only import SourceOnly
from paramcast.baselines.tta import CoTTA, TentContinual

__all__ = ["CWD", "DUET", "PKD", "CoTTA", "FHyper", "FLinear", "FineTuning", "SourceOnly", "TentContinual"]
