"""CDC-MMPG: Fast Domain Adaptor (FDA, eq. 5–7) + AnchorFrame Distribution Reasoner (ADR, eq. 8–18).

Cloud side (seed Fig. 2 a–b, Algorithm 1 Phase II)::

    F_m^i (1, C) ──Ψ_E──► N(μ, σ) ──(μ, or R ~ N)──Ψ_D──► F̂ (1, C) ──Φ(F̂, F_m^i)──► F_a
    F_a ──f_p──► E_g (1, E) ──f_h──► W (V, H), b (V,)    [residual: W = W_0 + ΔW, b = b_0 + Δb]

Device side (Fig. 2 c): frozen encoder -> per-frame F_m (B, T, C) -> mean over frames -> static head
``Linear(C, H) -> LN -> GELU`` -> generated ``Linear(H, V)`` (eq. 7).

Implementation choices (the seed leaves these open; each is named so a reader can find it):

* **Whole layer (seed) or residual (paramcast).** ``residual=False`` (default, the seed's eq. 6):
  f_h's output *is* the generated layer Θ_d. ``residual=True``: ``W_0 + ΔW(F)`` with a learned
  static ``W_0, b_0`` and f_h's output layer initialised near zero, so training starts from a working
  static head and the hypernetwork learns only the per-device correction
  (:mod:`paramcast.methods.generated_head` says how little the two differ in parameters).
* **Eq. 17, λ's place** (``lam_on``): ``"global"`` (default, as printed) ``λ·MSE(F_a, F_g) +
  MSE(F_a, F_m^i)``; ``"anchor"`` (paramcast's reading) ``MSE(F_a, F_g) + λ·MSE(F_a, F_m^i)``;
  see :func:`paramcast.losses.vae.adr_loss`.
* **Per-device groups.** Phase II trains on groups ``(anchor, M targets)`` of the *same* device: the
  generator sees one frame of the anchor sample and its head must classify the device's other
  samples. That is the personalisation signal; it also matches inference, where one upload serves
  every later sample of the device.
* **ADR input/target (eq. 12–15).** The VAE encodes the one anchor-frame feature F_m^i (all the
  cloud has at inference) and its decoder reconstructs F_g, the mean of D sampled frames: the
  "reasoning" from one frame to the clip-level feature the FDA was designed for.
* **Deterministic inference.** ``cloud_step`` uses the posterior mean (``sample_at_inference`` turns
  on the seed's R ~ N(μ, σ)); a batched call then equals the per-upload loop exactly.
* **F-hyper** (the seed's ablation) is this class with ``use_adr=False``: the hypernetwork is trained
  on F_g (eq. 5) and, at inference, fed the single uploaded frame feature directly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paramcast.losses.vae import adr_loss
from paramcast.methods.cdc_mmpg.config import CDCMMPGConfig
from paramcast.methods.cdc_mmpg.serving import ServedLinear
from paramcast.methods.generated_head import GeneratedHeadMethod, add_static_layer
from paramcast.models.heads import (
    DeviceModel,
    StaticHead,
    adain,
    default_device,
)
from paramcast.models.training import (
    build_config,
    fit_device_groups,
    group_objective,
    group_targets,
    minibatches,
)
from paramcast.registry import register

if TYPE_CHECKING:
    from paramcast.models.features import FeatureSet

__all__ = ["CDCMMPG", "AdaptiveGenerator", "FastDomainAdaptor", "HyperNetwork", "Projector",
           "sample_global_feature"]


def sample_global_feature(features: torch.Tensor, d: int, generator: torch.Generator) -> torch.Tensor:
    """F_g: mean of D frames drawn without replacement per row. features (B, T, C) -> (B, C)."""
    B, T, _ = features.shape
    pick = torch.rand(B, T, generator=generator).argsort(dim=1)[:, : min(d, T)].to(features.device)  # (B, D)
    return torch.gather(features, 1, pick[..., None].expand(-1, -1, features.shape[-1])).mean(1)


class Projector(nn.Module):
    """f_p (eq. 5): two linear layers and a normalisation layer, F (.., C) -> E_g (.., E)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, in_dim), nn.LayerNorm(in_dim), nn.GELU(),
                                 nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HyperNetwork(nn.Module):
    """f_h (eq. 6): MLP E_g (B, E) -> one linear layer per row, weight (B, V, H) and bias (B, V)."""

    def __init__(self, in_dim: int, hidden: int, head_in: int, num_answers: int, init_std: float):
        super().__init__()
        self.head_in, self.num_answers = head_in, num_answers
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.out = nn.Linear(hidden, (head_in + 1) * num_answers)   # the huge layer: hidden × (H+1)·V
        nn.init.normal_(self.out.weight, std=init_std)
        nn.init.zeros_(self.out.bias)
        self._served = ServedLinear()  # the serving copy of ``out`` (not a module: never saved)

    def forward(self, e: torch.Tensor, serve_dtype: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """``serve_dtype`` (serving only, no grad; :mod:`paramcast.methods.cdc_mmpg.serving`): f_h's
        output layer as fp32, bf16 or int8 weights, accumulated in fp32 / int32, the result fp32.
        One GEMM per batch either way."""
        h = self.body(e)
        if torch.is_grad_enabled():
            theta = self.out(h)                                                  # (B, (H+1)·V)
        else:
            theta = self._served(self.out, h, serve_dtype)
        w, b = theta.split([self.head_in * self.num_answers, self.num_answers], dim=-1)
        return w.view(-1, self.num_answers, self.head_in), b                     # (B, V, H), (B, V)


class AdaptiveGenerator(nn.Module):
    """ADR (eq. 8–11, 16): VAE Ψ_E/Ψ_D over one anchor-frame feature + Φ = channel-wise AdaIN.

    ``forward(anchor (B, C), sample) -> dict(mu, logvar, reconstructed F̂, generated F_a)``.
    """

    def __init__(self, dim: int, hidden: int, latent: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * latent))  # Ψ_E
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(), nn.Linear(hidden, dim))      # Ψ_D

    def forward(self, anchor: torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mu, logvar = self.encoder(anchor).chunk(2, dim=-1)                        # eq. 8: (B, Z) each
        logvar = logvar.clamp(-10.0, 10.0)
        if sample:                                                                # eq. 9, reparameterised
            eps = torch.randn(mu.shape, generator=generator).to(mu)
            z = mu + eps * (0.5 * logvar).exp()
        else:
            z = mu
        recon = self.decoder(z)                                                   # eq. 10 / 13: F̂ (B, C)
        return {"mu": mu, "logvar": logvar, "reconstructed": recon,
                "generated": adain(recon, anchor)}                                # eq. 11 / 16: F_a


class FastDomainAdaptor(nn.Module):
    """FDA (eq. 5–6): feature (B, C) -> W (B, V, H), b (B, V); f_h's output itself (``residual=False``)
    or ``W_0 + ΔW`` (``residual=True``)."""

    def __init__(self, feature_dim: int, num_answers: int, cfg: CDCMMPGConfig):
        super().__init__()
        self.projector = Projector(feature_dim, cfg.proj_dim)                     # f_p
        self.dropout = nn.Dropout(cfg.dropout)
        self.hyper = HyperNetwork(cfg.proj_dim, cfg.hyper_hidden, cfg.head_hidden, num_answers,
                                  cfg.delta_init_std)                             # f_h
        self.residual = cfg.residual
        add_static_layer(self, cfg.head_hidden, num_answers, cfg.residual)       # W_0 (V, H), b_0 (V,)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generate(self.projector(feature))

    def generate(self, embedding: torch.Tensor, serve_dtype: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """f_h on a projected embedding E_g (B, E) -> W (B, V, H), b (B, V) (+ W_0, b_0 when residual)."""
        dw, db = self.hyper(self.dropout(embedding), serve_dtype)                       # (B, V, H), (B, V)
        if self.residual:
            return self.weight0 + dw, self.bias0 + db
        return dw, db


@register("cdc-mmpg")
class CDCMMPG(GeneratedHeadMethod):
    """The seed's full system. ``create("cdc-mmpg", num_answers=V, feature_dim=C, **config_fields)``."""

    config_class = CDCMMPGConfig

    def __init__(self, num_answers: int, feature_dim: int = 192, encoder: nn.Module | None = None,
                 config: CDCMMPGConfig | dict | None = None, device: str | None = None, seed: int = 0,
                 progress: bool = False, **overrides: Any):
        self.config = build_config(self.config_class, config, self._defaults() | overrides)
        self.num_answers, self.feature_dim = num_answers, feature_dim
        self.device = torch.device(device or default_device())
        self.seed, self.progress = seed, progress
        torch.manual_seed(seed)
        cfg = self.config
        self.adaptor = FastDomainAdaptor(feature_dim, num_answers, cfg).to(self.device)
        self.generator = AdaptiveGenerator(feature_dim, cfg.vae_hidden, cfg.latent_dim).to(self.device) \
            if cfg.use_adr else None
        self.model = DeviceModel(StaticHead(feature_dim, cfg.head_hidden), num_answers).to(self.device)
        self.log: dict[str, Any] = {}
        self.model_version = f"{self.name}-untrained"
        self.reset()

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {}

    # --- cloud: training (Algorithm 1, Phase I) ---------------------------------------------
    def fit(self, history: FeatureSet) -> None:
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(self.seed)
        if self.generator is not None:
            self.log["adr"] = self.fit_adr(history, g)
            self.generator.requires_grad_(False).eval()          # frozen for the rest (seed §4.3)
        self.log["fda"] = self._fit_fda(history, g)
        self.log["fit_seconds"] = time.perf_counter() - t0
        self.model_version = f"{self.name}-{self.seed}-{len(history)}"
        self.reset()

    def fit_adr(self, history: FeatureSet, g: torch.Generator) -> list[dict[str, float]]:
        """ADR first, on its own objective L = L_ag + L_rec + L_KL (eq. 18)."""
        cfg, gen = self.config, self.generator
        opt = torch.optim.AdamW(gen.parameters(), lr=cfg.adr_lr, weight_decay=cfg.weight_decay)
        rows = torch.arange(len(history))
        steps = max(1, cfg.adr_epochs * -(-rows.numel() // cfg.batch_size))
        sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=steps, power=1.0)  # seed: polynomial decay
        gen.train()
        log = []
        for _ in range(cfg.adr_epochs):
            sums = {"ag": 0.0, "rec": 0.0, "kl": 0.0, "total": 0.0}
            n = 0
            for idx in minibatches(rows, cfg.batch_size, g):
                feats = history.features[idx].to(self.device)                      # (B, T, C)
                losses = self._adr_losses(feats, g)
                opt.zero_grad(set_to_none=True)
                losses["total"].backward()
                opt.step()
                sched.step()
                for k in sums:
                    sums[k] += losses[k].item() * idx.numel()
                n += idx.numel()
            log.append({k: v / max(n, 1) for k, v in sums.items()})
        return log

    def _adr_losses(self, feats: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """ADR losses for a batch of clips' per-frame features (B, T, C): random anchor frame, F_g of D frames."""
        B, T, _ = feats.shape
        anchor = feats[torch.arange(B), torch.randint(T, (B,), generator=g)]      # F_m^i (B, C)
        global_feature = sample_global_feature(feats, self.config.sampled_frames, g)  # F_g (B, C)
        out = self.generator(anchor, sample=True, generator=g)
        return adr_loss(out["generated"], out["reconstructed"], global_feature, anchor, out["mu"],
                        out["logvar"], self.config.lam, self.config.lam_on)

    def _fit_fda(self, history: FeatureSet, g: torch.Generator) -> list[dict[str, float]]:
        """The rest (f_p, f_h, W_0, static head) on per-device groups, the adaptive generator frozen."""
        cfg = self.config
        return fit_device_groups(
            lambda groups: self._group_loss(history, groups, g), [self.adaptor, self.model],
            [*self.adaptor.parameters(), *self.model.static.parameters()], history, epochs=cfg.epochs, lr=cfg.lr,
            weight_decay=cfg.weight_decay, group_size=cfg.group_size, groups_per_step=cfg.groups_per_step,
            generator=g, objective=self.objective)

    def _group_loss(self, history: FeatureSet, groups: list[tuple[int, torch.Tensor]],
                    g: torch.Generator) -> tuple[torch.Tensor, int, int]:
        """Cross-entropy of each group's targets under the head generated from its anchor's one frame."""
        target = group_targets(groups)                                            # (G, M)
        anchors = history.features[torch.tensor([a for a, _ in groups])].to(self.device)  # (G, T, C)
        source = self.training_source(anchors, g)                                # (G, C)
        weight, bias = self.adaptor(source)                                       # (G, V, H), (G, V)
        loss, _, correct, n = group_objective(self.model.static, history, target, weight, bias, self.device,
                                             self.objective)
        return loss, correct, n

    def training_source(self, anchors: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """What the hypernetwork sees in training: F_a from a random anchor frame (ADR) or F_g (F-hyper)."""
        if self.generator is None:
            return sample_global_feature(anchors, self.config.sampled_frames, g)  # eq. 5: F_g
        G, T, _ = anchors.shape
        frame = anchors[torch.arange(G), torch.randint(T, (G,), generator=g)]     # F_m^i (G, C)
        with torch.no_grad():
            return self.generator(frame, sample=True, generator=g)["generated"]   # F_a (eq. 11)

    # --- cloud at adaptation time (Algorithm 1, Phase II–III; the device half is GeneratedHeadMethod's)
    @torch.no_grad()
    def generate(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cloud generator for N uploaded frame features (N, C) -> weight (N, V, H), bias (N, V)."""
        self.adaptor.eval()                                                       # no dropout when serving
        x = features.to(self.device, torch.float32)
        if self.generator is not None:
            x = self.generator(x, sample=self.config.sample_at_inference)["generated"]
        return self.adaptor.generate(self.adaptor.projector(x), self.config.serve_dtype)

    def static_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.adaptor.weight0, self.adaptor.bias0

    def cloud_params(self) -> int:
        """Parameters the cloud holds to serve updates: FDA (+ ADR)."""
        mods = [self.adaptor] + ([self.generator] if self.generator is not None else [])
        return sum(p.numel() for m in mods for p in m.parameters())
