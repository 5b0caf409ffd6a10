"""Source-only: the cloud's static model, deployed to every device unchanged (no adaptation)."""

from __future__ import annotations

from paramcast.baselines._static import StaticHeadMethod
from paramcast.registry import register

__all__ = ["SourceOnly"]


@register("source-only")
class SourceOnly(StaticHeadMethod):
    """All-in-One's QA head trained on the cloud history; ``device_step`` does nothing."""
