"""Uncertainty-guided Token Sampling (UTS), the device -> cloud uplink of CD-CCA (eq. 2-4).

Stage 1 (eq. 2) keeps the samples whose predictive entropy is high; stage 2 (VIS, eq. 3-4) runs the
shared image encoder ``M`` times with its dropout switched on and keeps the tokens whose variance
across passes exceeds ``beta`` (or, with ``token_ratio``, the most variable fraction of each sample).
Only the kept tokens travel: unlike the public code, which zeroes the other tokens and sends the full
tensor (docs/design.md), the payload really shrinks. The upload is a plain :class:`~paramcast.types.Upload`,
exactly what ``wire.encode`` sends: kept tokens in ``features``, where they sat in ``positions`` /
``samples``, and the uploaded samples' question ids in ``text`` (the seed uploads instances
``(v_i, t_i)``; the teacher needs ``t_i`` to pseudo-label). The token grid's size is not sent: the
cloud knows it from the shared encoder's configuration (``MLLMConfig.n_image_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from paramcast.losses.entropy import mc_dropout_variance
from paramcast.types import Upload

__all__ = ["UTSConfig", "UncertaintyTokenSampler", "unpack_tokens"]


@dataclass(frozen=True)
class UTSConfig:
    sample_mode: Literal["uts", "all"] = "uts"            # stage 1 on ("uts") or off ("all": every sample)
    sample_ratio: float = 0.2                             # keep this fraction of highest-entropy samples ...
    entropy_threshold: float | None = None                # ... or every sample with U > threshold (eq. 2)
    token_mode: Literal["uts", "random", "all"] = "uts"   # stage 2: variance, random (Table 4), or off
    token_ratio: float = 0.5                              # keep this fraction of tokens per sample ...
    variance_threshold: float | None = None               # ... or tokens with sigma^2 > beta (eq. 4)
    mc_passes: int = 8                                    # M of eq. 3

    def __post_init__(self) -> None:
        for f in ("sample_ratio", "token_ratio"):
            if not 0 < getattr(self, f) <= 1:
                raise ValueError(f"{f}={getattr(self, f)}: use a fraction in (0, 1]")
        if self.mc_passes < 2:
            raise ValueError(f"mc_passes={self.mc_passes}: a variance needs at least 2 passes")


class UncertaintyTokenSampler:
    """Picks samples (stage 1) and tokens (stage 2) to upload."""

    def __init__(self, cfg: UTSConfig, seed: int = 0):
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(seed)

    def select_samples(self, uncertainty: torch.Tensor) -> torch.Tensor:
        """uncertainty (N,) -> indices of kept samples, most uncertain first."""
        c = self.cfg
        order = uncertainty.argsort(descending=True)
        if c.sample_mode == "all":
            return order
        if c.entropy_threshold is not None:
            return order[uncertainty[order] > c.entropy_threshold]
        return order[: max(1, round(c.sample_ratio * len(order)))]

    @torch.no_grad()
    def token_variance(self, encoder: nn.Module, frames: torch.Tensor) -> torch.Tensor:
        """Eq. 3: (S, H, W, 3) frames -> (S, T) per-token variance over ``mc_passes`` dropout passes."""
        was = encoder.training
        encoder.train()  # dropout on: Monte Carlo passes
        passes = torch.stack([encoder(frames) for _ in range(self.cfg.mc_passes)])  # (M, S, T, C)
        encoder.train(was)
        return mc_dropout_variance(passes).cpu()

    def select_tokens(self, variance: torch.Tensor) -> torch.Tensor:
        """Eq. 4: (S, T) variance -> (S, T) bool keep-mask."""
        c = self.cfg
        S, T = variance.shape
        if c.token_mode == "all":
            return torch.ones(S, T, dtype=torch.bool)
        if c.token_mode == "uts" and c.variance_threshold is not None:
            return variance > c.variance_threshold
        k = max(1, round(c.token_ratio * T))
        score = variance if c.token_mode == "uts" else torch.rand(S, T, generator=self.gen)
        keep = torch.zeros(S, T, dtype=torch.bool)
        keep.scatter_(1, score.topk(k, dim=1).indices, True)
        return keep

    def __call__(self, encoder: nn.Module, frames: torch.Tensor, image: torch.Tensor, uncertainty: torch.Tensor,
                 questions: torch.Tensor, meta: dict, quant: str = "fp32") -> Upload:
        """Build the upload: ``image`` (N, T, C) eval-mode tokens, ``uncertainty`` (N,) from eq. 2.
        Selection runs on the CPU and the upload's tensors are CPU tensors (they go on the wire)."""
        image, questions = image.cpu(), questions.cpu()
        idx = self.select_samples(uncertainty.cpu())                             # (S,)
        if self.cfg.token_mode == "uts" and len(idx):
            keep = self.select_tokens(self.token_variance(encoder, frames[idx.to(frames.device)]))  # (S, T)
        else:
            keep = self.select_tokens(torch.zeros(len(idx), image.shape[1]))
        samples, positions = keep.nonzero(as_tuple=True)
        return Upload(**meta, features=image[idx][samples, positions].contiguous(), positions=positions,
                      samples=samples, quant=quant, text=questions[idx].contiguous())


def unpack_tokens(up: Upload, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cloud side: kept tokens -> padded grid (S, T = ``n_tokens``, C) and its key mask (S, T) (True =
    token present); S = rows of ``up.text``."""
    S = int(up.text.shape[0])
    image = up.features.new_zeros(S, n_tokens, up.features.shape[1])
    mask = torch.zeros(S, n_tokens, dtype=torch.bool)
    image[up.samples, up.positions] = up.features.float()
    mask[up.samples, up.positions] = True
    return image, mask
