"""Tiny synthetic feature sets with devices, answers and sprite categories (no dataset build)."""

from __future__ import annotations

import torch

from paramcast.data.base import IGNORE
from paramcast.models.features import FeatureSet


def make_features(n: int = 64, devices: int = 4, T: int = 6, C: int = 16, answers: int = 7, categories: int = 3,
                  seed: int = 0) -> FeatureSet:
    """Per-frame features = device shift + answer direction + category direction + noise."""
    g = torch.Generator().manual_seed(seed)
    device = torch.arange(n) % devices
    answer = torch.randint(answers, (n,), generator=g)
    answer[::11] = IGNORE
    category = torch.randint(categories, (n,), generator=g)
    feats = (torch.randn(devices, C, generator=g)[device][:, None]
             + torch.randn(answers, C, generator=g)[answer.clamp(min=0)][:, None]
             + torch.randn(categories, C, generator=g)[category][:, None]
             + 0.3 * torch.randn(n, T, C, generator=g))
    return FeatureSet(feats, answer, device, meta={"category": category})
