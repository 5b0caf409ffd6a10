"""Baselines named by the seeds; each registers itself and implements :class:`paramcast.methods.Method`."""

from paramcast.baselines.duet import DUET
from paramcast.baselines.f_hyper import FHyper
from paramcast.baselines.finetune import FineTuning, FLinear
from paramcast.baselines.source_only import SourceOnly

__all__ = ["DUET", "FHyper", "FLinear", "FineTuning", "SourceOnly"]
