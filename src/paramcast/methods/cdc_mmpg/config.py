"""Configuration of CDC-MMPG (FDA + ADR); every default is the seed's value unless the comment says why not."""

from __future__ import annotations

from dataclasses import dataclass

from paramcast.losses.vae import LAM_ON
from paramcast.methods.cdc_mmpg.serving import SERVE_DTYPES

__all__ = ["SERVE_DTYPES", "CDCMMPGConfig"]


@dataclass(frozen=True)
class CDCMMPGConfig:
    """Hyper-parameters of CDC-MMPG (seed ``cdc-mmpg.txt`` §3.2–3.3, §4.3)."""

    head_hidden: int = 96            # H: width of the static head / input of the generated layer (All-in-One: C/2)
    proj_dim: int = 96               # width of E_g, output of the projector f_p (eq. 5)
    hyper_hidden: int = 96           # hidden layer of the hypernetwork f_h (seed: 96 for open-ended QA)
    latent_dim: int = 64             # ADR VAE latent size (seed does not say)
    vae_hidden: int = 192            # hidden width of the VAE encoder/decoder MLPs (seed does not say)
    sampled_frames: int = 3          # D: frames averaged into F_g during training (seed: 3)
    lam: float = 0.1                 # λ of L_ag (eq. 17; seed: 0.1)
    lam_on: str = "global"           # eq. 17's λ weights MSE(F_a, F_g) ("global", as printed) or MSE(F_a, F_m) ("anchor")
    use_adr: bool = True             # False = F-hyper: hypernetwork fed F_g / the raw frame, no adaptive generator
    residual: bool = False           # False: f_h generates the whole layer (seed); True: W = W_0 + ΔW(F) (paramcast)
    delta_init_std: float = 1e-3     # std of f_h's output layer at init (small: training starts at W_0)
    adr_epochs: int = 8              # Phase I epochs over the history (seed: 10)
    adr_lr: float = 1e-3             # Phase I AdamW lr (seed: 2e-5 for pretrained weights; ours start from scratch)
    epochs: int = 20                 # Phase II epochs over the history (seed: 40)
    lr: float = 2e-3                 # Phase II AdamW lr (seed: 1e-4; from scratch on CPU needs more)
    weight_decay: float = 0.05       # AdamW weight decay, both phases
    dropout: float = 0.1             # dropout on E_g before f_h (limits per-device over-fitting)
    group_size: int = 16             # M: samples of one device classified with one generated head
    groups_per_step: int = 32        # G: device groups (each with its own anchor and head) per step
    batch_size: int = 256            # rows per step in Phase I
    anchor_frame: int = 0            # frame the device uploads at inference (seed §1: the first frame)
    sample_at_inference: bool = False  # draw R ~ N(mu, sigma) in cloud_step (seed Alg. 1) or use mu (deterministic)
    serve_dtype: str = "fp32"        # f_h's output layer when serving: fp32, bf16 or int8 (serving.py)

    def __post_init__(self) -> None:
        for f in ("head_hidden", "proj_dim", "hyper_hidden", "latent_dim", "vae_hidden", "sampled_frames",
                  "group_size", "groups_per_step", "batch_size"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: must be >= 1")
        for f in ("adr_epochs", "epochs", "anchor_frame"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f}={getattr(self, f)}: must be >= 0")
        if self.lam < 0 or self.weight_decay < 0 or self.delta_init_std < 0:
            raise ValueError("lam, weight_decay and delta_init_std must be >= 0")
        if self.lr <= 0 or self.adr_lr <= 0:
            raise ValueError("lr and adr_lr must be > 0")
        if self.lam_on not in LAM_ON:
            raise ValueError(f"lam_on={self.lam_on!r}: use 'global' (eq. 17 as printed) or 'anchor' (paramcast)")
        if self.serve_dtype not in SERVE_DTYPES:
            raise ValueError(f"serve_dtype={self.serve_dtype!r}: use one of {list(SERVE_DTYPES)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: use a value in [0, 1)")
