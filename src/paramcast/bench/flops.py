"""FLOPs of one call, counted by PyTorch's own ``FlopCounterMode`` (matmuls, convolutions, SDPA)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops"]


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Floating-point operations of ``fn(*args, **kwargs)`` (a multiply-add counts 2), run without grad."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())
