"""Device-side fine-tuning baselines of the seed (§4.4.1): F-linear and Fine-tuning.

Both adapt on the device with ``k`` labelled samples of its own inside ``device_step`` (and upload
nothing): F-linear fine-tunes the QA head's MLP layers on the frozen encoder's features;
Fine-tuning fine-tunes the whole model, encoder included, from the raw frames. ``last_adapt_seconds``
holds the measured on-device training time of the last adaptation.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paramcast.baselines._static import StaticHeadConfig, StaticHeadMethod
from paramcast.models.training import labelled
from paramcast.registry import register
from paramcast.types import Upload

if TYPE_CHECKING:
    from paramcast.models.features import FeatureSet

__all__ = ["FLinear", "FineTuning", "FineTuneConfig"]


@dataclass(frozen=True)
class FineTuneConfig(StaticHeadConfig):
    """Cloud head training (inherited) + the device's few-shot fine-tuning."""

    k: int = 16                  # labelled samples the device annotates and trains on
    adapt_steps: int = 30        # full-batch optimisation steps on the k samples
    adapt_lr: float = 1e-3       # AdamW learning rate on the device
    sampled_frames: int = 0      # D frames per clip when Fine-tuning runs the encoder; 0 = as the cloud
                                 #   pretrained it (EncoderConfig: all T with joint fusion, else 3)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1 or self.adapt_steps < 0 or self.sampled_frames < 0:
            raise ValueError("k >= 1, adapt_steps >= 0 and sampled_frames >= 0 are required")
        if self.adapt_lr <= 0:
            raise ValueError(f"adapt_lr={self.adapt_lr}: must be > 0")


@register("f-linear")
class FLinear(StaticHeadMethod):
    """Fine-tune the QA head (all its layers) on the device's first k labelled samples."""

    config_class = FineTuneConfig

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_adapt_seconds = 0.0

    def _adapt_rows(self, batch: FeatureSet) -> torch.Tensor:
        return labelled(batch.answer)[: self.config.k]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def device_step(self, batch: FeatureSet) -> Upload | None:
        rows = self._adapt_rows(batch)
        t0 = time.perf_counter()
        if rows.numel():
            self._adapt(batch.subset(rows))
        self.last_adapt_seconds = time.perf_counter() - t0
        return None

    def _adapt(self, shots: FeatureSet) -> None:
        opt = torch.optim.AdamW(self.trainable_parameters(), lr=self.config.adapt_lr, weight_decay=0.0)
        self.head.train()
        x, rows = shots.features.to(self.device), torch.arange(len(shots))
        for _ in range(self.config.adapt_steps):
            loss, _ = self.objective(self.head(x), shots, rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.head.eval()


@register("fine-tuning")
class FineTuning(FLinear):
    """Fine-tune the whole device model (encoder + QA head) on the device's k labelled samples.

    Needs the encoder (``encoder=``) and raw frames/questions in the batches; it works on a private
    copy of the encoder, so the shared frozen encoder other methods use is never touched.
    """

    reads_raw_inputs = True

    def __init__(self, *args: Any, encoder: nn.Module | None = None, **kwargs: Any):
        if encoder is None:
            raise ValueError("fine-tuning retrains the encoder on the device: pass encoder=<AllInOneEncoder>")
        self._own_encoder = copy.deepcopy(encoder).requires_grad_(True)
        super().__init__(*args, encoder=encoder, **kwargs)
        self._own_encoder.to(self.device).eval()
        self.adapted = False

    def _modules(self) -> dict[str, nn.Module]:
        return {"head": self.head, "encoder": self._own_encoder}

    @property
    def own_encoder(self) -> nn.Module:
        """The device's private copy of the encoder that fine-tuning trains (the shared one stays frozen)."""
        return self._own_encoder

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) + list(self._own_encoder.parameters())

    def _adapt(self, shots: FeatureSet) -> None:
        if shots.frames is None or shots.question is None:
            raise ValueError("fine-tuning needs raw frames and questions: build the FeatureSet with keep_raw=True")
        enc, c = self._own_encoder, self.config
        opt = torch.optim.AdamW(self.trainable_parameters(), lr=c.adapt_lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(self.seed)
        T = shots.frames.shape[1]
        rows = torch.arange(len(shots))
        # The encoder's frozen part (a pretrained backbone's stem) runs once, not at every step.
        stem = shots.tokens if shots.tokens is not None else enc.stem(shots.frames)
        enc.train()
        self.head.train()
        for _ in range(c.adapt_steps):
            fidx = torch.randperm(T, generator=g)[: c.sampled_frames or enc.train_frames(T)].sort().values
            feats = enc.fuse(stem[:, fidx], shots.question, frame_index=fidx.to(self.device))
            loss, _ = self.objective(self.head(feats), shots, rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        enc.eval()
        self.head.eval()
        self.adapted = True

    @torch.no_grad()
    def predict(self, batch: FeatureSet) -> torch.Tensor:
        if not self.adapted:
            return super().predict(batch)
        if batch.frames is None or batch.question is None:
            raise ValueError("an adapted fine-tuning model re-encodes the frames: pass raw frames and questions")
        out = []
        for s in range(0, len(batch), 64):
            q = batch.question[s: s + 64]
            feats = (self._own_encoder.fuse(batch.tokens[s: s + 64], q) if batch.tokens is not None
                     else self._own_encoder(batch.frames[s: s + 64], q))
            out.append(self.head(feats).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_answers)

    def reset(self) -> None:
        super().reset()
        self.adapted = False

    def device_params(self) -> int:
        return super().device_params() + sum(p.numel() for p in self._own_encoder.parameters())
