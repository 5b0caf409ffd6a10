"""StableSynthNet (seed ``stablesynthnet.txt``, eq. 3–12): a hypernetwork driven by one uploaded frame
feature, stabilised by Driver Contrastive Training, Offset-Driver Separation and Template-Driver
Extraction.

Cloud side::

    F_m^i (1, C) ──nearest template P_type[:, a]──Υ (eq. 11)──► F' = λΥ + (1 − λ)F_m^i (eq. 12)
    F' ──f_p──► driver E (1, E) ──f_h──► W (V, H), b (V,)   (eq. 3)   [residual: W = W_0 + ΔW, b = b_0 + Δb]

Device side: frozen encoder -> per-frame F_m (B, T, C) -> mean over frames -> static head
``Linear(C, H) -> LN -> GELU`` -> the generated ``Linear(H, V)`` (eq. 4). Payloads are CDC-MMPG's:
``Upload(features=(1, C))`` up, ``HeadParams`` down.

Training (one step = G device groups, see :func:`paramcast.models.training.device_groups`)::

    rows   = the G anchors + their G·M targets, each with ONE random frame h (R, C)
    F'     = fuse(h)                      (TDE on)      E = f_p(F') (R, E)
    L_ce   = CE of each group's targets under the head generated from its anchor's E
    L(i)   = margin InfoNCE of E by category (eq. 5–6)         Var(L^i) per category (eq. 8)
    loss   = L_ce + [DCT] w_cl · mean L(i) + [ODS] λ · mean_i Var(L^i)
    P_type ← moving average towards the category means of h (eq. 9–10)   (TDE on, no gradient)

Readings of the seed and choices it leaves open (each named so a reader can find it):

* **Driver.** The "parametric driver" the contrastive loss shapes is the projector output
  ``E = f_p(F')``, the hypernetwork's input; the templates live in the uploaded-feature space
  (their width "is the same as the size of multi-modal feature embedding", and eq. 12 mixes them
  with F_m^i). θ_ij in eq. 6 is therefore the angle between drivers.
* **Category.** ``category="answer"`` (default) uses the QA answer class: every FeatureSet has it,
  and it is what the generated head must separate. ``category="sprite"`` uses the emoji category
  of the clip's main sprite (``ClipSet.category``), the seed's notion of a *content* type; it needs
  ``FeatureSet.meta["category"]`` (the ablation sets it; ``run_videoqa``'s feature sets do not
  carry it yet). Rows without a label (out-of-vocabulary answers) are in no positive or negative set.
* **Eq. 5 and 8 are means, not sums** over the batch, so the weights do not depend on batch size;
  eq. 8's ``Σ_i λ Var(L^i)`` thereby weights each category's variance by its share of the batch.
* **Eq. 10, garbled.** Read literally, ``P ← βP + (1 − β)·s·(H_aver − P)`` with ``s = 1/(γ Var N)``
  mixes a *point* with a *difference* and drives P towards ``s/(1+s)·H_aver`` (towards 0). The
  reading that makes the template a running category mean is ``P ← P + (1 − β)·s·(H_aver − P)``,
  i.e. an exponential moving average whose step is slowed by the approach speed. ``s`` is capped
  at 1 (the step never exceeds the plain EMA's ``1 − β``, so a near-zero variance cannot make P
  overshoot), and a category's first batch initialises its template to ``H_aver``.
* **Eq. 11, garbled.** The text says the template is re-normalised "to have the same channel-wise
  mean and standard deviation as F_m^i"; the printed formula swaps the roles (and δ/γ). We follow
  the text: ``Υ = σ(F)·(P − μ(P))/σ(P) + μ(F)``, statistics over the C channels of the one
  uploaded vector (the same reading as CDC-MMPG's AdaIN, :func:`paramcast.models.heads.adain`).
* **Template choice at inference.** The device does not know the category of what it uploads, so
  the cloud picks the template with the highest cosine similarity to F_m^i among the categories it
  has seen. Training uses the same rule (not the true label), so the hypernetwork is trained on
  exactly the fused inputs it will get at inference.
* **Whole layer (seed) or residual (paramcast).** ``residual=False`` (default): f_h's output is the
  generated layer, as in eq. 3; ``residual=True`` adds a learned static ``W_0, b_0``
  (:mod:`paramcast.methods.generated_head`).
* **Ablation switches.** ``use_dct=False`` drops L_cl from the loss, ``use_ods=False`` drops the
  variance term, ``use_tde=False`` removes the template bank and the fusion (F' = F_m^i). The
  per-sample InfoNCE values are still computed (without gradient) when only TDE needs them.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from paramcast.losses.contrastive import margin_info_nce, per_label_variance
from paramcast.methods.cdc_mmpg.model import FastDomainAdaptor
from paramcast.methods.generated_head import GeneratedHeadMethod
from paramcast.methods.stablesynthnet.config import StableSynthNetConfig
from paramcast.models.encoder import default_device
from paramcast.models.features import FeatureSet
from paramcast.models.heads import DeviceModel, StaticHead, adain
from paramcast.models.training import build_config, fit_device_groups, group_objective, group_targets
from paramcast.registry import register

__all__ = ["ParametricDriver", "StableSynthNet", "TemplateBank", "renormalise_template"]


def renormalise_template(template: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """Eq. 11 (text reading): the template with the channel mean and std of the uploaded feature.

    ``Υ = σ(F)·(P − μ(P))/σ(P) + μ(F)``; template, feature (..., C) -> (..., C).
    """
    return adain(template, feature)


class TemplateBank(nn.Module):
    """Template-Driver Extraction (eq. 9–10): ``P_type`` (C, Q), one template column per category.

    ``templates`` and ``seen`` are buffers: they are saved with the model and never trained by
    gradient; :meth:`update` moves them, :meth:`nearest` and :meth:`fuse` read them.
    """

    def __init__(self, dim: int, num_categories: int, beta: float = 0.9, gamma: float = 1.0):
        super().__init__()
        self.beta, self.gamma = beta, gamma
        self.register_buffer("templates", torch.zeros(dim, num_categories))     # P_type (C, Q)
        self.register_buffer("seen", torch.zeros(num_categories, dtype=torch.bool))

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, variance: torch.Tensor) -> None:
        """One moving-average step per category present in the batch.

        features h (N, C), labels (N,) (negative = unlabelled, skipped), variance (N,) = Var(L^i) of
        each row's category. For category a with N_a rows: ``H_aver = mean h`` (eq. 9),
        ``s = min(1, 1 / (γ · Var_a · N_a))``, ``P_a ← P_a + (1 − β) · s · (H_aver − P_a)`` (eq. 10,
        reading in the module docstring); a category seen for the first time starts at ``H_aver``.
        """
        keep = labels >= 0
        labels, features, variance = labels[keep], features[keep], variance[keep]
        Q = self.templates.shape[1]
        count = torch.bincount(labels, minlength=Q).to(features.dtype)                  # N_a (Q,)
        mean = torch.zeros(Q, features.shape[1], dtype=features.dtype, device=features.device)
        mean = mean.index_add_(0, labels, features) / count.clamp(min=1)[:, None]       # H_aver (Q, C)
        var = torch.zeros(Q, dtype=variance.dtype, device=variance.device)
        var = var.scatter_reduce_(0, labels, variance, reduce="amax")                   # Var(L^a) (Q,)
        denom = self.gamma * var * count
        speed = torch.where(denom <= 1.0, torch.ones_like(denom), 1.0 / denom)          # approach speed, capped
        old = self.templates.T                                                          # (Q, C)
        moved = old + ((1 - self.beta) * speed)[:, None] * (mean - old)
        present = count > 0
        new = torch.where((present & ~self.seen)[:, None], mean, torch.where(present[:, None], moved, old))
        self.templates.copy_(new.T)
        self.seen |= present

    def nearest(self, features: torch.Tensor) -> torch.Tensor:
        """Index of the most cosine-similar seen template for each row: features (N, C) -> (N,)."""
        if not bool(self.seen.any()):
            raise RuntimeError("the template bank is empty: fit the method before generating heads")
        sim = nn.functional.normalize(features, dim=-1) @ nn.functional.normalize(self.templates, dim=0)  # (N, Q)
        return sim.masked_fill(~self.seen, -torch.inf).argmax(-1)

    def fuse(self, features: torch.Tensor, lam: float) -> torch.Tensor:
        """Eq. 11–12 with the nearest template: ``F' = λ Υ(P_a, F) + (1 − λ) F``; (N, C) -> (N, C)."""
        if not bool(self.seen.any()):
            return features
        template = self.templates.T[self.nearest(features)]                          # (N, C)
        return lam * renormalise_template(template, features) + (1 - lam) * features


class ParametricDriver(FastDomainAdaptor):
    """f_p and f_h (eq. 3) (+ the static layer when residual): F' (B, C) -> driver E = f_p(F') (B, E) ->
    ``generate(E)`` -> W (B, V, H), b (B, V). The same module as CDC-MMPG's FDA; StableSynthNet calls
    its two halves apart because its contrastive losses act on the driver E in between."""


@register("stablesynthnet")
class StableSynthNet(GeneratedHeadMethod):
    """``create("stablesynthnet", num_answers=V, feature_dim=C, **config_fields)``."""

    config_class = StableSynthNetConfig

    def __init__(self, num_answers: int, feature_dim: int = 192, encoder: nn.Module | None = None,
                 config: StableSynthNetConfig | dict | None = None, device: str | None = None, seed: int = 0,
                 progress: bool = False, num_categories: int | None = None, **overrides: Any):
        self.config = build_config(self.config_class, config, overrides)
        self.num_answers, self.feature_dim = num_answers, feature_dim
        self.device = torch.device(device or default_device())
        self.seed, self.progress = seed, progress
        torch.manual_seed(seed)
        cfg = self.config
        self.driver = ParametricDriver(feature_dim, num_answers, cfg).to(self.device)
        self.model = DeviceModel(StaticHead(feature_dim, cfg.head_hidden), num_answers).to(self.device)
        # P_type: built in fit (Q from the data), or here when rebuilding from a checkpoint
        self.templates: TemplateBank | None = None
        if num_categories is not None and cfg.use_tde:
            self.templates = TemplateBank(feature_dim, num_categories, cfg.beta, cfg.gamma).to(self.device)
        self.log: dict[str, Any] = {}
        self.model_version = f"{self.name}-untrained"
        self.reset()

    def checkpoint_args(self) -> dict[str, Any]:
        args = super().checkpoint_args()
        if self.templates is not None:
            args["num_categories"] = int(self.templates.templates.shape[1])
        return args

    # --- categories --------------------------------------------------------------------------------
    def categories(self, data: FeatureSet) -> torch.Tensor:
        """The category label a_i of every row (negative = none), per ``config.category``."""
        if self.config.category == "answer":
            return data.answer
        if "category" not in data.meta:
            raise ValueError("category='sprite' needs FeatureSet.meta['category'] (ClipSet.category of the same "
                             "rows): set fs.meta['category'] = clips.category, or use category='answer'")
        cat = torch.as_tensor(data.meta["category"], dtype=torch.long)
        if cat.shape != data.answer.shape:
            raise ValueError(f"FeatureSet.meta['category'] has shape {tuple(cat.shape)}, expected "
                             f"{tuple(data.answer.shape)} (one category per row)")
        return cat

    # --- cloud: training ---------------------------------------------------------------------------
    def fit(self, history: FeatureSet) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        labels = self.categories(history)
        num_categories = self.num_answers if cfg.category == "answer" else int(labels.max()) + 1
        self.templates = TemplateBank(self.feature_dim, num_categories, cfg.beta, cfg.gamma).to(self.device) \
            if cfg.use_tde else None
        g = torch.Generator().manual_seed(self.seed)
        log = fit_device_groups(
            lambda groups: self.step_losses(history, labels, groups, g), [self.driver, self.model],
            [*self.driver.parameters(), *self.model.static.parameters()], history, epochs=cfg.epochs, lr=cfg.lr,
            weight_decay=cfg.weight_decay, group_size=cfg.group_size, groups_per_step=cfg.groups_per_step,
            generator=g, objective=self.objective)
        self.log = {"train": log, "fit_seconds": time.perf_counter() - t0}
        if self.templates is not None:
            self.log["templates_seen"] = int(self.templates.seen.sum())
        self.model_version = f"{self.name}-{self.seed}-{len(history)}"
        self.reset()

    def step_losses(self, history: FeatureSet, labels: torch.Tensor, groups: list[tuple[int, torch.Tensor]],
                    g: torch.Generator) -> tuple[dict[str, torch.Tensor], int, int]:
        """All loss terms of one step (see the module docstring) and ``(correct, targets)``.

        Updates the template bank as a side effect when TDE is on (after the losses are computed).
        """
        cfg = self.config
        G = len(groups)
        target = group_targets(groups)                                            # (G, M)
        anchors = torch.tensor([a for a, _ in groups])
        rows = torch.cat([anchors, target[target >= 0]])                          # (R,) anchors first
        feats = history.features[rows]                                            # (R, T, C)
        frame = feats[torch.arange(len(rows)), torch.randint(feats.shape[1], (len(rows),), generator=g)]
        frame = frame.to(self.device)                                             # h: one frame per row (R, C)
        fused = self.templates.fuse(frame, cfg.fusion_lambda) if self.templates is not None else frame  # F'
        driver = self.driver.projector(fused)                                     # E (R, E)
        weight, bias = self.driver.generate(driver[:G])                           # (G, V, H), (G, V)

        ce, _, correct, n_targets = group_objective(self.model.static, history, target, weight, bias, self.device,
                                                    self.objective)

        cat = labels[rows].to(self.device)
        need_grad = cfg.use_dct or cfg.use_ods
        with torch.set_grad_enabled(need_grad and torch.is_grad_enabled()):
            emb = driver if need_grad else driver.detach()
            losses, has_pos = margin_info_nce(emb, cat, cfg.margin, cfg.temperature)   # L(i) (R,)
            var = per_label_variance(losses, cat, has_pos)                              # Var(L^i) (R,)
        zero = ce.new_zeros(())
        cl = losses[has_pos].mean() if bool(has_pos.any()) else zero
        ods = var[has_pos].mean() if bool(has_pos.any()) else zero
        loss = ce
        if cfg.use_dct:
            loss = loss + cfg.cl_weight * cl
        if cfg.use_ods:
            loss = loss + cfg.ods_weight * ods
        if self.templates is not None and torch.is_grad_enabled():
            self.templates.update(frame, cat, var.detach())
        return {"loss": loss, "ce": ce, "cl": cl, "ods": ods}, correct, n_targets

    # --- cloud at adaptation time (the device half is GeneratedHeadMethod's) -------------------------
    @torch.no_grad()
    def generate(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N uploaded frame features (N, C) -> fused F' -> driver -> weight (N, V, H), bias (N, V)."""
        self.driver.eval()
        x = features.to(self.device, torch.float32)
        if self.templates is not None:
            x = self.templates.fuse(x, self.config.fusion_lambda)
        return self.driver.generate(self.driver.projector(x))

    def static_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.driver.weight0, self.driver.bias0

    def cloud_params(self) -> int:
        """Numbers the cloud holds to serve updates: f_p, f_h (W_0, b_0 when residual) and the template bank P_type."""
        bank = self.templates.templates.numel() if self.templates is not None else 0
        return sum(p.numel() for p in self.driver.parameters()) + bank
