"""Shared base of the baselines that run one static QA head on the frozen encoder's features."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paramcast.methods.base import Method
from paramcast.models.heads import QAHead, default_device
from paramcast.models.training import (
    ANSWER_CE,
    Objective,
    build_config,
    labelled,
    minibatches,
    objective_parameters,
    warmup_cosine,
)

if TYPE_CHECKING:
    from paramcast.models.features import FeatureSet

__all__ = ["StaticHeadConfig", "StaticHeadMethod", "train_head"]


@dataclass(frozen=True)
class StaticHeadConfig:
    """Cloud training of All-in-One's QA head on the history (shared by source-only, F-linear, Fine-tuning)."""

    head_hidden: int = 96        # H of Linear(C, H) -> LN -> GELU -> Linear(H, V)
    epochs: int = 20             # passes over the history features
    lr: float = 2e-3             # AdamW learning rate (one-cycle schedule)
    weight_decay: float = 0.05   # AdamW weight decay
    batch_size: int = 256        # rows per step

    def __post_init__(self) -> None:
        if self.head_hidden < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError("head_hidden >= 1, epochs >= 0 and batch_size >= 1 are required")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")


def train_head(head: nn.Module, data: FeatureSet, epochs: int, lr: float, weight_decay: float, batch_size: int,
               generator: torch.Generator, device: torch.device,
               objective: Objective = ANSWER_CE) -> list[dict[str, float]]:
    """Train ``head`` on the per-frame features (N, T, C) of ``data`` against ``objective`` (default: QA
    cross-entropy) in shuffled minibatches of its labelled rows (IGNORE rows skipped)."""
    rows = labelled(data.answer)
    params = [p for p in head.parameters() if p.requires_grad] + objective_parameters(objective)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * -(-rows.numel() // batch_size))
    sched = warmup_cosine(opt, steps)
    modules = [head, objective] if isinstance(objective, nn.Module) else [head]
    for m in modules:
        m.train()
    log = []
    for _ in range(epochs):
        tot, correct, n = 0.0, 0, 0
        for idx in minibatches(rows, batch_size, generator):
            loss, right = objective(head(data.features[idx].to(device)), data, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot, correct, n = tot + loss.item() * idx.numel(), correct + right, n + idx.numel()
        log.append({"loss": tot / max(n, 1), "train_acc": correct / max(n, 1)})
    for m in modules:
        m.eval()
    return log


class StaticHeadMethod(Method):
    """One QA head trained on the cloud history; subclasses add device-side adaptation."""

    config_class: type = StaticHeadConfig
    objective = ANSWER_CE        # what the head trains against, in the cloud and on the device (Method.set_objective)

    def __init__(self, num_answers: int, feature_dim: int = 192, encoder: nn.Module | None = None,
                 config: Any = None, device: str | None = None, seed: int = 0, progress: bool = False,
                 **overrides: Any):
        self.config = build_config(self.config_class, config, overrides)
        self.num_answers, self.feature_dim, self.seed, self.progress = num_answers, feature_dim, seed, progress
        self.device = torch.device(device or default_device())
        torch.manual_seed(seed)
        self.head = QAHead(feature_dim, num_answers, self.config.head_hidden).to(self.device)
        self.encoder = encoder
        self.log: dict[str, Any] = {}
        self._snapshot = self._state()

    def _modules(self) -> dict[str, nn.Module]:
        """Everything ``reset`` restores."""
        return {"head": self.head}

    def _state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: copy.deepcopy(m.state_dict()) for k, m in self._modules().items()}

    def fit(self, history: FeatureSet) -> None:
        t0 = time.perf_counter()
        c = self.config
        g = torch.Generator().manual_seed(self.seed)
        self.log["head"] = train_head(self.head, history, c.epochs, c.lr, c.weight_decay, c.batch_size, g,
                                      self.device, self.objective)
        self.log["fit_seconds"] = time.perf_counter() - t0
        self._snapshot = self._state()

    def after_load(self) -> None:
        self._snapshot = self._state()                       # reset() returns to the loaded weights

    @torch.no_grad()
    def predict(self, batch: FeatureSet) -> torch.Tensor:
        self.head.eval()
        return self.head(batch.features.to(self.device)).cpu()

    def reset(self) -> None:
        for k, m in self._modules().items():
            m.load_state_dict(self._snapshot[k])

    def device_params(self) -> int:
        """Parameters on the device besides the shared frozen encoder (the QA head)."""
        return sum(p.numel() for p in self.head.parameters())

    def cloud_params(self) -> int:
        return 0
