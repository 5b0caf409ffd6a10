"""Configuration of StableSynthNet; every default is the seed's value unless the comment says why not."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "StableSynthNetConfig"]

#: What a "category" (the seed's label a_i) is on EmojiClips; see the module docstring of ``model``.
CATEGORIES = ("answer", "sprite")


@dataclass(frozen=True)
class StableSynthNetConfig:
    """Hyper-parameters of StableSynthNet (seed ``stablesynthnet.txt`` §3, §4.1)."""

    # --- the HyperNetwork-based generalisation it builds on (eq. 3–4; shared with CDC-MMPG) ---
    head_hidden: int = 96            # H: width of the static head / input of the generated layer (seed: 96)
    proj_dim: int = 96               # width of the driver E = f_p(F'), the hypernetwork's input
    hyper_hidden: int = 96           # hidden layer of f_h (seed: 96 for open-ended QA)
    residual: bool = False           # False: f_h generates the whole layer (seed eq. 3); True: W = W_0 + ΔW(F') (paramcast)
    delta_init_std: float = 1e-3     # std of f_h's output layer at init (residual: training starts at W_0)
    dropout: float = 0.1             # dropout on the driver before f_h
    epochs: int = 20                 # epochs over the history (seed: 40)
    lr: float = 2e-3                 # AdamW lr (seed: 1e-4 for pretrained weights; ours start from scratch)
    weight_decay: float = 0.05       # AdamW weight decay
    group_size: int = 16             # M: samples of one device classified with one generated head
    groups_per_step: int = 32        # G: device groups per step; the contrastive batch is their G·(M+1) rows
    anchor_frame: int = 0            # frame the device uploads at inference (one frame, eq. 3)
    # --- what a category is --------------------------------------------------------------------
    category: str = "answer"         # "answer" (QA label) or "sprite" (ClipSet.category via FeatureSet.meta)
    # --- Driver Contrastive Training (eq. 5–6) ---------------------------------------------------
    use_dct: bool = True             # add the margin InfoNCE L_cl to the loss
    margin: float = 0.2              # m: angular margin on positive pairs, radians (seed does not say)
    temperature: float = 0.1         # T (seed does not say; 0.1 is the common InfoNCE value)
    cl_weight: float = 1.0           # weight of L_cl next to the cross-entropy (seed adds them unweighted)
    # --- Offset-Driver Separation (eq. 8) -------------------------------------------------------
    use_ods: bool = True             # add λ · Var(L^i) to the loss
    ods_weight: float = 0.1          # λ of eq. 8 (seed: λ = 0.1)
    # --- Template-Driver Extraction and fusion (eq. 9–12) ---------------------------------------
    use_tde: bool = True             # keep the template bank and fuse F' = λΥ + (1 − λ)F_m
    beta: float = 0.9                # β: moving-average momentum of the template bank (seed does not say)
    gamma: float = 1.0               # γ of the approach speed 1 / (γ · Var(L^i) · N^{a_i})
    fusion_lambda: float = 0.1       # λ of eq. 12 (seed: λ = 0.1)

    def __post_init__(self) -> None:
        errors = []
        for f in ("head_hidden", "proj_dim", "hyper_hidden", "group_size", "groups_per_step"):
            if getattr(self, f) < 1:
                errors.append(f"{f}={getattr(self, f)}: must be >= 1")
        for f in ("epochs", "anchor_frame"):
            if getattr(self, f) < 0:
                errors.append(f"{f}={getattr(self, f)}: must be >= 0")
        for f in ("weight_decay", "delta_init_std", "margin", "cl_weight", "ods_weight", "gamma"):
            if getattr(self, f) < 0:
                errors.append(f"{f}={getattr(self, f)}: must be >= 0")
        if self.lr <= 0 or self.temperature <= 0:
            errors.append("lr and temperature must be > 0")
        if not 0 <= self.dropout < 1:
            errors.append(f"dropout={self.dropout}: use a value in [0, 1)")
        if not 0 <= self.beta < 1:
            errors.append(f"beta={self.beta}: use a momentum in [0, 1)")
        if not 0 <= self.fusion_lambda <= 1:
            errors.append(f"fusion_lambda={self.fusion_lambda}: use a mixing weight in [0, 1]")
        if self.category not in CATEGORIES:
            errors.append(f"category={self.category!r}: use one of {CATEGORIES}")
        if errors:
            raise ValueError("StableSynthNetConfig: " + "; ".join(errors))
