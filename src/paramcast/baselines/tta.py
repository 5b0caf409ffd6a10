"""Device-only test-time adaptation baselines of CD-CCA's tables: TENT-continual and CoTTA.

Both adapt the pretrained CD-CCA student (:class:`~paramcast.methods.cd_cca.Pretrained`) on the
device, on each round's unlabelled samples, and upload nothing. The image encoder stays the frozen,
shared one of every method.

* TENT (Wang et al. 2021): minimise the prediction entropy w.r.t. the normalisation layers' affine
  parameters only (DESIGN.md: for LayerNorm models, the LayerNorm affine parameters; the LM's
  RMSNorm weights are its LayerNorms). Continual: never reset between rounds. As published, the
  output returned for a batch is the one computed *before* that batch's update.
* CoTTA (Wang et al. 2022): an EMA teacher (0.999) gives pseudo-labels, averaged over augmentations
  when the source (anchor) model's confidence is low; the student learns them; then each trainable
  element is restored to its source value with probability 0.01. The prediction is the teacher's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from paramcast.losses.entropy import entropy
from paramcast.methods.cd_cca.akd import adapter_parameters
from paramcast.methods.cd_cca.method import Pretrained, SourceOnly, _augment
from paramcast.methods.cd_cca.model import MLLM
from paramcast.methods.cd_cca.tasks import MLLMBatch, answer_logits, caption_io, greedy_caption

__all__ = ["CoTTA", "TentContinual", "collect_norm_params", "stochastic_restore"]


def collect_norm_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Affine parameters of every LayerNorm / RMSNorm (TENT's ``collect_params``)."""
    out = {}
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm) or type(mod).__name__.endswith("RMSNorm"):
            out.update({f"{mname}.{n}": p for n, p in mod.named_parameters(recurse=False)})
    if not out:
        raise ValueError("TENT needs normalisation layers with affine parameters; the model has none")
    return out


def _caption_entropy(model: MLLM, image: torch.Tensor, max_len: int) -> torch.Tensor:
    """Mean per-token entropy (B,) of the model's own greedy caption, with gradients (teacher forcing)."""
    ids, _ = greedy_caption(model, image, None, max_len)
    inp, target = caption_io(ids, model.layout)
    ent = entropy(model(image, None, inp).logits)           # (B, T)
    valid = (target != -100).float()
    return (ent * valid).sum(1) / valid.sum(1).clamp(min=1)


class TentContinual(SourceOnly):
    name = "tent"

    def __init__(self, pre: Pretrained, lr: float = 1e-3, batch_size: int = 32):
        self.lr, self.batch_size = lr, batch_size
        super().__init__(pre)

    def reset(self) -> None:
        super().reset()
        params = collect_norm_params(self.model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        self.opt = torch.optim.Adam(params.values(), lr=self.lr)
        self.last_output: torch.Tensor | None = None

    def device_step(self, batch: MLLMBatch) -> None:
        """Adapt on the round's samples; ``last_output`` holds the answer logits from before each update."""
        outs = []
        for b in batch.chunks(self.batch_size):
            logits, _ = answer_logits(self.model, b.image, None, b.question)
            loss = entropy(logits).mean() + _caption_entropy(self.model, b.image, self.pre.max_caption).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            outs.append(logits.detach())
        self.last_output = torch.cat(outs) if outs else None
        return None


def stochastic_restore(params: dict[str, torch.Tensor], source: dict[str, torch.Tensor], p: float,
                       gen: torch.Generator) -> float:
    """Reset each element to its source value with probability ``p``; returns the fraction reset."""
    n_reset, n = 0, 0
    with torch.no_grad():
        for k, t in params.items():
            mask = (torch.rand(t.shape, generator=gen) < p).to(t.device)
            t.copy_(torch.where(mask, source[k], t))
            n_reset, n = n_reset + int(mask.sum()), n + mask.numel()
    return n_reset / max(n, 1)


class CoTTA(SourceOnly):
    name = "cotta"

    def __init__(self, pre: Pretrained, lr: float = 1e-3, batch_size: int = 32, ema: float = 0.999,
                 anchor_threshold: float = 0.9, n_augment: int = 4, restore_p: float = 0.01, seed: int = 0):
        self.lr, self.batch_size, self.ema = lr, batch_size, ema
        self.anchor_threshold, self.n_augment, self.restore_p, self.seed = anchor_threshold, n_augment, restore_p, seed
        super().__init__(pre)

    def reset(self) -> None:
        self.student = copy.deepcopy(self.pre.student).eval()
        self.model = copy.deepcopy(self.pre.student).eval()   # the EMA teacher, which also predicts
        self.anchor = self.pre.student                         # source model, frozen
        self.params = adapter_parameters(self.student)         # same adapter set as CD-CCA
        for n, p in self.student.named_parameters():
            p.requires_grad_(n in self.params)
        self.source = {k: v.detach().clone() for k, v in self.params.items()}
        self.opt = torch.optim.Adam(self.params.values(), lr=self.lr)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.restored: list[float] = []

    @torch.no_grad()
    def _teacher_answer(self, b: MLLMBatch) -> torch.Tensor:
        """Soft answer pseudo-labels (B, A): augmentation-averaged where the anchor is unsure."""
        anchor_conf = answer_logits(self.anchor, b.image, None, b.question)[0].softmax(-1).amax(-1)  # (B,)
        probs = answer_logits(self.model, b.image, None, b.question)[0].softmax(-1)
        low = anchor_conf < self.anchor_threshold
        if bool(low.any()):
            aug = torch.stack([
                answer_logits(self.model, self.pre.encoder(_augment(b.frames[low], self.gen).flip(-1) if k % 2
                                                           else _augment(b.frames[low], self.gen)),
                              None, b.question[low])[0].softmax(-1)
                for k in range(self.n_augment)]).mean(0)
            probs[low] = aug
        return probs

    def device_step(self, batch: MLLMBatch) -> None:
        for b in batch.chunks(self.batch_size):
            target = self._teacher_answer(b)
            caption, _ = greedy_caption(self.model, b.image, None, self.pre.max_caption)
            logits, _ = answer_logits(self.student, b.image, None, b.question)
            inp, tgt = caption_io(caption, self.student.layout)
            cap_logits = self.student(b.image, None, inp).logits
            loss = -(target * logits.log_softmax(-1)).sum(-1).mean() + \
                nn.functional.cross_entropy(cap_logits.flatten(0, 1), tgt.flatten(), ignore_index=-100)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            with torch.no_grad():
                for (n, t), s in zip(self.model.named_parameters(), self.student.parameters(), strict=True):
                    if n in self.params:
                        t.mul_(self.ema).add_(s.detach(), alpha=1 - self.ema)
            self.restored.append(stochastic_restore(self.params, self.source, self.restore_p, self.gen))
        return None
