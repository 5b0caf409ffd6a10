"""Small helpers shared by the methods that train on cached features (CDC-MMPG and the baselines)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch

from paramcast.data.base import IGNORE

__all__ = ["build_config", "device_groups", "labelled", "minibatches", "warmup_cosine"]

C = TypeVar("C")


def build_config(cls: type[C], config: C | dict | None, overrides: dict[str, Any]) -> C:
    """A method config from a dataclass instance, a dict, and keyword overrides (unknown keys raise)."""
    if config is None:
        config = cls()
    elif isinstance(config, dict):
        config = cls(**config)
    if overrides:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
        config = dataclasses.replace(config, **overrides)
    return config


def labelled(answer: torch.Tensor) -> torch.Tensor:
    """Row indices with an in-vocabulary answer (rows with IGNORE cannot be trained on)."""
    return torch.nonzero(answer != IGNORE).flatten()


def minibatches(index: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Shuffled chunks of ``index``."""
    order = index[torch.randperm(index.numel(), generator=generator)]
    for s in range(0, order.numel(), batch_size):
        yield order[s: s + batch_size]


def device_groups(device: torch.Tensor, answer: torch.Tensor, group_size: int,
                  generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """Per-device training groups: a list of ``(anchor_row, target_rows (M,))``, shuffled.

    Each device's labelled rows are shuffled and cut into groups of ``group_size``; each group gets an
    anchor row drawn from the *same device* but outside the group (the sample whose frame the device
    uploads), so the generator must personalise a head for samples it has not seen.
    """
    groups: list[tuple[int, torch.Tensor]] = []
    keep = answer != IGNORE
    for d in device.unique().tolist():
        rows = torch.nonzero((device == d) & keep).flatten()
        all_rows = torch.nonzero(device == d).flatten()
        if rows.numel() == 0:
            continue
        rows = rows[torch.randperm(rows.numel(), generator=generator)]
        for s in range(0, rows.numel(), group_size):
            tgt = rows[s: s + group_size]
            cand = all_rows[~torch.isin(all_rows, tgt)]
            cand = cand if cand.numel() else all_rows
            anchor = int(cand[torch.randint(cand.numel(), (1,), generator=generator)])
            groups.append((anchor, tgt))
    perm = torch.randperm(len(groups), generator=generator).tolist()
    return [groups[i] for i in perm]


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1):
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to 0 (safe for any step count)."""
    import math

    total = max(1, total_steps)
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
