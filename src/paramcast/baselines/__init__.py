"""Baselines named by the seeds; each registers itself and implements :class:`paramcast.methods.Method`."""

from paramcast.baselines.duet import DUET
from paramcast.baselines.f_hyper import FHyper
from paramcast.baselines.finetune import FineTuning, FLinear
from paramcast.baselines.source_only import SourceOnly

# The MLLM baselines of CD-CCA's tables (paramcast.baselines.kd, .tta) are imported on first use
# (paramcast.catalog): they load peft and the MLLMs, which a video-QA service never needs.
__all__ = ["DUET", "FHyper", "FLinear", "FineTuning", "SourceOnly"]
