"""DUET (Lv et al., WWW 2023), the hypernetwork baseline of StableSynthNet's Table 2.

The device uploads D = 5 frame features of its first sample, ``Upload(features=(D, C))`` (the
seed's 5 × 192 input); the cloud generates the same layer as CDC-MMPG / StableSynthNet, the device's
last ``Linear(H, V)`` (the whole layer, or ``W_0 + ΔW`` with ``residual=True``).

Generator, as DUET's public ``HyperNetwork_FC`` (``code/module/common.py``, HelloZicky/DUET)::

    frames (B, D, C) ──GRU(C → z)──► last state (B, z) ──MLP z→z→z (Tanh between)──► code z (B, z)
    z ──w1, b1──► W (B, V, H)        z ──w2, b2──► b (B, V)

The public code's GRU hidden size and MLP width are both ``id_dimension``, the width of its input
embeddings, so the code z is as wide as one input step: here ``code_dim = C`` (192 for the seeds'
encoder; ``code_dim=None``). That is the bottleneck: the generated layer is a linear map of a
z-wide code, ``z × (H + 1)·V`` weights, instead of the ``(D·C) × (H + 1)·V`` of a direct map.
The seed's 28.2 M "FLOPs" for DUET on a 5 × 192 input fit this shape counted as multiply-adds
(thop's convention): at V = 1500 and H = 96, ``192 · 97 · 1500 = 27.9 M`` MACs for the generated
layer plus 1.1 M for the GRU and 0.07 M for the MLP, 29.1 M in all (``bench.flops`` counts 2 FLOPs
per multiply-add, so it reports about twice that).

Differences from the public code, each deliberate:

* It keeps ``w1, w2, b1, b2`` in plain Python lists, so they are not registered and never trained
  (docs/design.md); here every generator weight is an ``nn.Module`` parameter and
  ``tests/stablesynthnet/test_duet.py`` proves each receives a gradient.
* It initialises ``w1, b1, w2, b2`` with ``fmod(randn, 2)`` (std ≈ 1): with a 192-wide code that
  generates weights of magnitude ≈ 14 and a saturated softmax from the first step. Here ``w1, w2``
  start at ``delta_init_std`` and ``b1, b2`` at zero (the generated layer starts near zero, or at
  ``W_0`` with ``residual=True``), as f_h does in CDC-MMPG.
* Dropout (``dropout``) on the code z before the generated layer, as CDC-MMPG / StableSynthNet
  have on their hypernetwork input (the public code has none).

Training mirrors CDC-MMPG's Phase II (per-device groups: the head generated from an anchor sample's
frames classifies the device's other samples); the anchor's D frames are drawn at random (in
temporal order) during training and evenly spaced at inference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from paramcast.methods.generated_head import GeneratedHeadMethod, add_static_layer
from paramcast.models.encoder import default_device
from paramcast.models.features import FeatureSet
from paramcast.models.heads import DeviceModel, StaticHead
from paramcast.models.training import build_config, fit_device_groups, group_objective, group_targets
from paramcast.registry import register

__all__ = ["DUET", "DUETConfig", "DUETGenerator", "frame_index"]


@dataclass(frozen=True)
class DUETConfig:
    """Hyper-parameters of the DUET baseline (training budget shared with CDC-MMPG)."""

    frames: int = 5                  # D: frame features uploaded (seed Table 2: a 5 × 192 input)
    head_hidden: int = 96            # H: width of the static head / input of the generated layer
    code_dim: int | None = None      # z: GRU hidden = MLP width = code width (None: C, as the public code)
    mlp_layers: int = 2              # layers of the MLP from the GRU state to z (public configs: 2)
    residual: bool = False           # False: the whole layer from z (seed-literal); True: W = W_0 + ΔW (paramcast)
    delta_init_std: float = 1e-3     # std of w1 / w2 at init (the generated layer starts near zero / at W_0)
    dropout: float = 0.1             # dropout on the code z before the generated layer
    epochs: int = 20                 # epochs over the history
    lr: float = 2e-3                 # AdamW lr
    weight_decay: float = 0.05       # AdamW weight decay
    group_size: int = 16             # M: samples of one device classified with one generated head
    groups_per_step: int = 32        # G: device groups per step

    def __post_init__(self) -> None:
        for f in ("frames", "head_hidden", "mlp_layers", "group_size", "groups_per_step"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: must be >= 1")
        if self.code_dim is not None and self.code_dim < 1:
            raise ValueError(f"code_dim={self.code_dim}: must be >= 1 (or None for the feature width)")
        if self.epochs < 0 or self.weight_decay < 0 or self.delta_init_std < 0:
            raise ValueError("epochs, weight_decay and delta_init_std must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: use a value in [0, 1)")


def frame_index(num_frames: int, d: int) -> torch.Tensor:
    """D evenly spaced frame indices of a T-frame clip (repeats when T < D): (D,) int64."""
    return torch.linspace(0, num_frames - 1, d).round().long()


class DUETGenerator(nn.Module):
    """``HyperNetwork_FC``: frames (B, D, C) -> GRU -> MLP -> code z (B, z) -> W (B, V, H), b (B, V)."""

    def __init__(self, frames: int, feature_dim: int, head_in: int, num_answers: int, cfg: DUETConfig):
        super().__init__()
        self.head_in, self.num_answers = head_in, num_answers
        z = cfg.code_dim or feature_dim
        self.gru = nn.GRU(feature_dim, z, batch_first=True)                       # DUET's _gru_cell
        layers: list[nn.Module] = []
        for i in range(cfg.mlp_layers):                                           # DUET's _mlp_trans
            layers.append(nn.Linear(z, z))
            if i < cfg.mlp_layers - 1:
                layers.append(nn.Tanh())
        self.mlp = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.weight_gen = nn.Linear(z, head_in * num_answers)                     # w1, b1
        self.bias_gen = nn.Linear(z, num_answers)                                 # w2, b2
        for lin in (self.weight_gen, self.bias_gen):
            nn.init.normal_(lin.weight, std=cfg.delta_init_std)
            nn.init.zeros_(lin.bias)
        self.residual = cfg.residual
        add_static_layer(self, head_in, num_answers, cfg.residual)                # W_0 (V, H), b_0 (V,)

    def code(self, frames: torch.Tensor) -> torch.Tensor:
        """The code z (B, z): the MLP of the GRU's state after the last frame."""
        states, _ = self.gru(frames)                                              # (B, D, z)
        return self.mlp(states[:, -1])

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.dropout(self.code(frames))                                       # (B, z)
        w = self.weight_gen(z).view(-1, self.num_answers, self.head_in)           # (B, V, H)
        b = self.bias_gen(z)                                                      # (B, V)
        if self.residual:
            return self.weight0 + w, self.bias0 + b
        return w, b


@register("duet")
class DUET(GeneratedHeadMethod):
    """``create("duet", num_answers=V, feature_dim=C, **config_fields)``."""

    config_class = DUETConfig

    def __init__(self, num_answers: int, feature_dim: int = 192, encoder: nn.Module | None = None,
                 config: DUETConfig | dict | None = None, device: str | None = None, seed: int = 0,
                 progress: bool = False, **overrides: Any):
        self.config = build_config(DUETConfig, config, overrides)
        self.num_answers, self.feature_dim = num_answers, feature_dim
        self.device = torch.device(device or default_device())
        self.seed, self.progress = seed, progress
        torch.manual_seed(seed)
        cfg = self.config
        self.generator = DUETGenerator(cfg.frames, feature_dim, cfg.head_hidden, num_answers, cfg).to(self.device)
        self.model = DeviceModel(StaticHead(feature_dim, cfg.head_hidden), num_answers).to(self.device)
        self.log: dict[str, Any] = {}
        self.model_version = f"{self.name}-untrained"
        self.reset()

    def fit(self, history: FeatureSet) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        g = torch.Generator().manual_seed(self.seed)
        log = fit_device_groups(
            lambda groups: self.group_loss(history, groups, g), [self.generator, self.model],
            [*self.generator.parameters(), *self.model.static.parameters()], history, epochs=cfg.epochs, lr=cfg.lr,
            weight_decay=cfg.weight_decay, group_size=cfg.group_size, groups_per_step=cfg.groups_per_step,
            generator=g, objective=self.objective)
        self.log = {"train": log, "fit_seconds": time.perf_counter() - t0}
        self.model_version = f"{self.name}-{self.seed}-{len(history)}"
        self.reset()

    def anchor_frames(self, feats: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """D frames per anchor, random and in temporal order: (G, T, C) -> (G, D, C)."""
        G, T, _ = feats.shape
        D = self.config.frames
        if T >= D:
            pick = torch.rand(G, T, generator=g).argsort(1)[:, :D].sort(1).values
        else:
            pick = frame_index(T, D).expand(G, D)
        return torch.gather(feats, 1, pick.to(feats.device)[..., None].expand(-1, -1, feats.shape[-1]))

    def group_loss(self, history: FeatureSet, groups: list[tuple[int, torch.Tensor]],
                   g: torch.Generator) -> tuple[torch.Tensor, int, int]:
        """Cross-entropy of each group's targets under the head generated from its anchor's D frames."""
        target = group_targets(groups)                                                    # (G, M)
        anchors = history.features[torch.tensor([a for a, _ in groups])].to(self.device)   # (G, T, C)
        weight, bias = self.generator(self.anchor_frames(anchors, g))                    # (G, V, H), (G, V)
        loss, _, correct, n = group_objective(self.model.static, history, target, weight, bias, self.device,
                                             self.objective)
        return loss, correct, n

    def upload_index(self, num_frames: int) -> torch.Tensor:
        """D evenly spaced frames of the device's first sample."""
        return frame_index(num_frames, self.config.frames)

    @property
    def upload_frames(self) -> int:
        return self.config.frames

    @torch.no_grad()
    def generate(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D, C) uploaded frame features -> weight (N, V, H), bias (N, V)."""
        self.generator.eval()
        return self.generator(frames.to(self.device, torch.float32))

    def static_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.weight0, self.generator.bias0

    def cloud_params(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())
