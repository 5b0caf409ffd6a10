"""Adapter-based Knowledge Distillation (AKD), the cloud side of CD-CCA (eq. 5-6).

Trainable in the student (seed sec. 4.1: "all the parameters in LLaMA normalization layers, linear
layer bias, LoRA, and query tokens in Q-Former"): LoRA (peft) on every attention projection of the
query transformer and the LM, every norm, every bias, the query tokens. Everything else is frozen.

Losses (eq. 6): ``L = l_query * L_query + l_repr * L_repr + l_ce * L_CE`` with

* ``L_query`` (eq. 5): ``MSE(phi_q(Q_s), Q_t)`` over the query transformer outputs;
* ``L_repr``: the seed gives no formula ("synchronize the attention-driven multimodal
  representations"). Its introduction says AKD distils "learnable language adapters, plugged into
  the LLM", so we align the LM's last hidden states over the text positions, ``MSE(phi_r(H_s), H_t)``
  (same form as eq. 5, its own projection ``phi_r``). Aligning the query transformer's
  cross-attention outputs instead would leave the LM adapters without a distillation signal.
* ``L_CE``: cross-entropy on the teacher's pseudo-labels: its answer token (hard) for VQA and its
  greedy caption for captioning.

``feature_loss`` swaps ``L_query`` and ``L_repr`` for the PKD or CWD baselines (same projections).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from paramcast.losses.kd import ChannelWiseDivergence, PKDLoss
from paramcast.models.mllm import MLLM
from paramcast.models.mllm_tasks import caption_io, caption_loss, greedy_caption, vqa_io, vqa_loss

__all__ = ["AKDConfig", "AdapterKD", "adapter_parameters", "add_adapters", "pseudo_label"]

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def add_adapters(model: MLLM, rank: int = 4) -> MLLM:
    """Inject LoRA (peft; B = 0 so the function is unchanged) and freeze all but the adapter set."""
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                       target_modules=LORA_TARGETS), model)
    trainable = set(adapter_parameters(model))
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    return model


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """LoRA, norms, biases and query tokens: the parameters AKD trains and DWC ships."""
    norm_types = (nn.LayerNorm,)
    norm_names = {f"{m}.{n}" for m, mod in model.named_modules()
                  if isinstance(mod, norm_types) or type(mod).__name__.endswith("RMSNorm")
                  for n, _ in mod.named_parameters(recurse=False)}
    return {n: p for n, p in model.named_parameters()
            if "lora_" in n or n in norm_names or n.endswith(".bias") or n.endswith("query_tokens")}


@dataclass(frozen=True)
class AKDConfig:
    feature_loss: Literal["akd", "pkd", "cwd", "none"] = "akd"  # "none": pseudo-labels only (Table 3 "PL")
    use_pl: bool = True       # L_CE on the teacher's pseudo-labels
    lambda_query: float = 1.0
    lambda_repr: float = 1.0
    lambda_ce: float = 1.0
    cwd_tau: float = 1.0
    steps: int = 40           # optimiser steps per round
    batch_size: int = 32
    lr: float = 1e-3
    lora_rank: int = 4

    def __post_init__(self) -> None:
        if self.feature_loss not in ("akd", "pkd", "cwd", "none"):
            raise ValueError(f"feature_loss={self.feature_loss!r}: use akd, pkd, cwd or none")
        if self.feature_loss == "none" and not self.use_pl:
            raise ValueError("feature_loss='none' with use_pl=False trains on nothing: enable one of them")


@torch.no_grad()
def pseudo_label(teacher: MLLM, image, mask, question, max_caption: int) -> dict[str, torch.Tensor]:
    """Teacher outputs on uploaded samples: answer class (S,), caption (S, 1 + Lc), and the features the
    student imitates (queries (S, L, Ct), LM hidden states on the question and on the caption)."""
    teacher.eval()
    loss_input, _ = vqa_io(question)
    out_q = teacher(image, mask, loss_input)
    pos = (question != 0).sum(1)
    a0, A = teacher.layout.answer0, teacher.layout.n_answers
    answer = out_q.logits[torch.arange(len(pos), device=pos.device), pos, a0:a0 + A].argmax(-1)
    caption, _ = greedy_caption(teacher, image, mask, max_caption)
    cap_in, _ = caption_io(caption, teacher.layout)
    out_c = teacher(image, mask, cap_in)
    return {"answer": answer, "caption": caption, "queries": out_q.queries, "hidden_q": out_q.hidden,
            "hidden_c": out_c.hidden}


def _masked(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, T, C), (B, T) -> (1, n_valid, C): padded positions dropped."""
    return x[valid][None]


class AdapterKD(nn.Module):
    """Trains the student's adapters on the cloud's store of uploaded samples."""

    def __init__(self, teacher: MLLM, student: MLLM, cfg: AKDConfig, seed: int = 0):
        super().__init__()
        self.teacher, self.student, self.cfg = teacher, student, cfg
        dev = next(student.parameters()).device
        self.phi_q = nn.Linear(student.cfg.q_hidden, teacher.cfg.q_hidden, device=dev)   # phi of eq. 5
        self.phi_r = nn.Linear(student.cfg.lm_hidden, teacher.cfg.lm_hidden, device=dev)  # phi of L_repr
        params = list(adapter_parameters(student).values()) + list(self.phi_q.parameters()) + \
            list(self.phi_r.parameters())
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        self.gen = torch.Generator().manual_seed(seed)
        self._pkd, self._cwd = PKDLoss(), ChannelWiseDivergence(cfg.cwd_tau)

    def _feat(self, s: torch.Tensor, t: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        kind = self.cfg.feature_loss
        if kind == "cwd":
            if valid is not None:  # masked tokens get probability 0 in both maps
                s = s.masked_fill(~valid[..., None], -1e4)
                t = t.masked_fill(~valid[..., None], -1e4)
            return self._cwd(s, t)
        if valid is not None:
            s, t = _masked(s, valid), _masked(t, valid)
        return self._pkd(s, t) if kind == "pkd" else nn.functional.mse_loss(s, t)

    def loss(self, image, mask, question, pl: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 6 on one batch of uploaded samples; returns the parts and ``total``."""
        c = self.cfg
        target = pl["answer"] if c.use_pl else torch.full_like(pl["answer"], -1)
        ce_q, out_q = vqa_loss(self.student, image, mask, question, target)
        ce_c, out_c = caption_loss(self.student, image, mask, pl["caption"])
        zero = torch.zeros((), device=image.device)
        parts = {"ce": ce_q + ce_c if c.use_pl else zero}
        if c.feature_loss != "none":
            q_valid = torch.cat([question != 0, torch.ones_like(question[:, :1], dtype=torch.bool)], 1)
            c_valid = caption_io(pl["caption"], self.student.layout)[1] != -100
            parts["query"] = self._feat(self.phi_q(out_q.queries), pl["queries"])
            parts["repr"] = self._feat(self.phi_r(out_q.hidden), pl["hidden_q"], q_valid) + \
                self._feat(self.phi_r(out_c.hidden), pl["hidden_c"], c_valid)
        else:
            parts["query"] = parts["repr"] = zero
        parts["total"] = c.lambda_ce * parts["ce"] + c.lambda_query * parts["query"] + c.lambda_repr * parts["repr"]
        return parts

    def fit(self, image, mask, question, pl: dict[str, torch.Tensor]) -> dict[str, float]:
        """``cfg.steps`` optimiser steps on random batches of the store; mean loss parts."""
        self.student.train()
        n = len(question)
        sums: dict[str, float] = {}
        for _ in range(self.cfg.steps):
            idx = torch.randperm(n, generator=self.gen)[: self.cfg.batch_size]
            parts = self.loss(image[idx], mask[idx], question[idx], {k: v[idx] for k, v in pl.items()})
            self.opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            self.opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / self.cfg.steps
        self.student.eval()
        return sums
