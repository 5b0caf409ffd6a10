"""CD-CCA (seed Algorithm 1) behind the :class:`~paramcast.methods.base.Method` interface.

    device: round's samples -> student inference -> UTS (eq. 2-4) -> Upload of kept tokens
    cloud:  Upload -> teacher pseudo-labels + AKD on every upload so far (eq. 5-6) -> DWC (eq. 7) -> WeightDelta
    device: WeightDelta -> base + delta (eq. 8) -> predict

:func:`pretrain` builds the shared frozen encoder, the teacher and the student on the source domain
once; every method (ours and the baselines) starts from a copy of that student.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from paramcast.data.base import ClipSet, Vocab
from paramcast.losses.entropy import entropy
from paramcast.methods.base import Method
from paramcast.methods.cd_cca.akd import AdapterKD, AKDConfig, adapter_parameters, add_adapters, pseudo_label
from paramcast.methods.cd_cca.dwc import DWCConfig, DynamicWeightCompression
from paramcast.methods.cd_cca.model import (
    MLLM,
    MLLMConfig,
    TokenLayout,
    VisionEncoder,
    student_config,
    teacher_config,
)
from paramcast.methods.cd_cca.tasks import (
    MLLMBatch,
    answer_logits,
    caption_loss,
    greedy_caption,
    make_batch,
    vqa_loss,
)
from paramcast.methods.cd_cca.uts import UncertaintyTokenSampler, UTSConfig, UTSUpload, unpack_tokens
from paramcast.models.heads import default_device
from paramcast.types import WeightDelta

__all__ = ["CDCCA", "CDCCAConfig", "PretrainConfig", "Pretrained", "SourceOnly", "pretrain", "uncertainty"]


@dataclass(frozen=True)
class PretrainConfig:
    teacher: MLLMConfig = field(default_factory=teacher_config)
    student: MLLMConfig = field(default_factory=student_config)
    teacher_epochs: int = 12      # encoder + teacher, jointly, on raw source frames
    student_epochs: int = 12      # student on the frozen encoder's tokens
    teacher_finetune_epochs: int | None = None  # then the teacher alone on those tokens (None: student_epochs)
    batch_size: int = 32
    lr: float = 2e-3
    teacher_augment: bool = True  # photometric jitter for the teacher: stands in for the large-scale
                                  # pretraining that makes the seed's 13B teacher the more robust model
    lora_rank: int = 4
    seed: int = 0


@dataclass
class Pretrained:
    encoder: VisionEncoder  # frozen, shared by teacher, student and device
    teacher: MLLM
    student: MLLM           # with (zero-initialised) LoRA adapters injected
    vocab: Vocab
    max_caption: int        # greedy decoding length


def _augment(frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float pixels (B, 3, H, W): random gain, colour cast, offset and noise."""
    x = VisionEncoder.pixels(frames)
    B = x.shape[0]
    gain = 1 + 0.4 * (torch.rand(B, 1, 1, 1, generator=gen) - 0.5)
    cast = 0.3 * (torch.rand(B, 3, 1, 1, generator=gen) - 0.5)
    noise = 0.1 * torch.rand(B, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return (x * gain.to(x.device) + cast.to(x.device) + noise.to(x.device)).clamp(-1, 1)


def _train_mllm(model: MLLM, encoder: VisionEncoder | None, data: MLLMBatch, epochs: int, cfg: PretrainConfig,
                augment: bool, gen: torch.Generator) -> None:
    """Supervised VQA + captioning; with ``encoder`` the encoder trains too (on raw frames)."""
    params = list(model.parameters()) + (list(encoder.parameters()) if encoder is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = epochs * max(1, -(-len(data) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    model.train()
    if encoder is not None:
        encoder.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=gen).split(cfg.batch_size):
            b = data.index(idx)
            if encoder is None:
                image = b.image
            else:
                image = encoder(_augment(b.frames, gen) if augment else VisionEncoder.pixels(b.frames))
            loss = vqa_loss(model, image, None, b.question, b.answer)[0] + caption_loss(model, image, None, b.caption)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
    model.eval()


def pretrain(source: ClipSet, vocab: Vocab, cfg: PretrainConfig = PretrainConfig(),
             device: str | torch.device | None = None, teacher_source: ClipSet | None = None) -> Pretrained:
    """Source-domain training: encoder + teacher jointly, then each model on the frozen encoder's tokens.

    ``teacher_source`` (default ``source``): the cloud's source corpus for encoder and teacher, which may
    be larger than the student's ``source`` (the seed's cloud model is the one with large-scale
    pretraining). Models live on ``device`` (default: cuda when available); random draws come from
    CPU generators, so a seed gives the same draws on either."""
    teacher_source = source if teacher_source is None else teacher_source
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    # Multiple-choice candidates may lie outside the answer classes (Vocab.mc_answers extends
    # Vocab.answers); every candidate gets an answer token so MC can score it.
    layout = TokenLayout(len(vocab.words), len(getattr(vocab, "mc_answers", None) or vocab.answers))
    n_cap = int((teacher_source.caption != 0).sum(1).max()) if len(teacher_source) else 8
    size = int(source.frames.shape[2])                       # the data's frame size (tiny: 32, else 64)
    n_q = max(source.question.shape[1], teacher_source.question.shape[1])
    t_cfg = MLLMConfig(**{**cfg.teacher.__dict__, "max_text": max(n_q, n_cap) + 4,
                          "image_size": size})
    s_cfg = MLLMConfig(**{**cfg.student.__dict__, "max_text": t_cfg.max_text, "image_size": size})
    dev = torch.device(device or default_device())
    encoder, teacher, student = VisionEncoder(t_cfg).to(dev), MLLM(t_cfg, layout).to(dev), MLLM(s_cfg, layout).to(dev)
    raw = make_batch(encoder, teacher_source)  # image tokens unused: the encoder is still training
    _train_mllm(teacher, encoder, raw, cfg.teacher_epochs, cfg, cfg.teacher_augment, gen)
    encoder.eval().requires_grad_(False)
    # The teacher finishes on the frozen encoder's clean tokens, as the student does: after the joint
    # stage alone it was *below* the student on the source domain (quick: MC 55.5 vs 61.9 %), so there
    # was nothing to distil; with this stage it is the stronger model there (67.2 %).
    t_epochs = cfg.student_epochs if cfg.teacher_finetune_epochs is None else cfg.teacher_finetune_epochs
    _train_mllm(teacher, None, make_batch(encoder, teacher_source), t_epochs, cfg, False, gen)
    teacher.requires_grad_(False)
    _train_mllm(student, None, make_batch(encoder, source), cfg.student_epochs, cfg, False, gen)
    return Pretrained(encoder, teacher, add_adapters(student, cfg.lora_rank), vocab, max_caption=n_cap)


@torch.no_grad()
def uncertainty(model: MLLM, batch: MLLMBatch, max_caption: int) -> torch.Tensor:
    """Eq. 2 per sample: entropy of the answer distribution + mean per-token entropy of the greedy
    caption (the seed's instance produces both an answer and a caption here)."""
    model.eval()
    logits, _ = answer_logits(model, batch.image, None, batch.question)
    _, cap_ent = greedy_caption(model, batch.image, None, max_caption)
    return entropy(logits) + cap_ent


class SourceOnly(Method):
    """The pretrained student, never adapted (seed Tables 1-2, first row)."""

    name = "source-only"

    def __init__(self, pre: Pretrained):
        self.pre = pre
        self.reset()  # subclasses build their state in reset()

    def fit(self, history) -> None:
        """Nothing to do: :func:`pretrain` already trained on the source history."""

    def predict(self, batch: MLLMBatch) -> torch.Tensor:
        with torch.no_grad():
            return answer_logits(self.model.eval(), batch.image, None, batch.question)[0]

    def reset(self) -> None:
        self.model = copy.deepcopy(self.pre.student).eval()


@dataclass(frozen=True)
class CDCCAConfig:
    uts: UTSConfig = field(default_factory=UTSConfig)
    akd: AKDConfig = field(default_factory=AKDConfig)
    dwc: DWCConfig = field(default_factory=DWCConfig)
    upload_quant: str = "int8"   # how uploaded token features travel: blockwise int8 (64 = one token's
                                 # channels per block) halves fp16's bytes; "fp16" is an ablation row
    device_id: str = "device-0"
    seed: int = 0


class CDCCA(SourceOnly):
    """Cloud-device collaborative continual adaptation: UTS uplink, AKD on the cloud, DWC downlink."""

    name = "cd-cca"
    collaborative = True

    def __init__(self, pre: Pretrained, cfg: CDCCAConfig = CDCCAConfig()):
        self.cfg = cfg
        super().__init__(pre)

    def reset(self) -> None:
        pre, cfg = self.pre, self.cfg
        self.model = copy.deepcopy(pre.student).eval()             # on the device
        self.cloud_student = copy.deepcopy(pre.student)            # on the cloud, trained by AKD
        self.device_copy = {k: v.detach().clone() for k, v in adapter_parameters(self.model).items()}
        self.akd = AdapterKD(pre.teacher, self.cloud_student, cfg.akd, cfg.seed)
        self.uts = UncertaintyTokenSampler(cfg.uts, cfg.seed)
        self.dwc = DynamicWeightCompression(cfg.dwc)
        self.version = 0        # device: deltas applied so far
        self.cloud_version = 0  # cloud: deltas sent so far
        self.store: dict[str, list[torch.Tensor]] = {}
        self.log: list[dict] = []

    def _meta(self) -> dict:
        return {"device_id": self.cfg.device_id, "method": self.name, "task": "mllm",
                "model_version": f"v{self.version}"}

    # -- device -------------------------------------------------------------------------------
    def device_step(self, batch: MLLMBatch) -> UTSUpload:
        u = uncertainty(self.model, batch, self.pre.max_caption)
        return self.uts(self.pre.encoder, batch.frames, batch.image, u, batch.question, self._meta(),
                        self.cfg.upload_quant)

    def apply(self, update: WeightDelta) -> None:
        if update.base_version != f"v{self.version}":
            raise ValueError(f"delta computed against {update.base_version!r}, device holds v{self.version}")
        DynamicWeightCompression.apply(dict(self.model.named_parameters()), update.deltas)
        self.version += 1

    # -- cloud --------------------------------------------------------------------------------
    def cloud_step(self, upload: UTSUpload) -> WeightDelta:
        dev = next(self.cloud_student.parameters()).device
        image, mask = (t.to(dev) for t in unpack_tokens(upload))
        questions = upload.questions.to(dev)
        pl = pseudo_label(self.pre.teacher, image, mask, questions, self.pre.max_caption)
        for k, v in {"image": image, "mask": mask, "question": questions, **pl}.items():
            self.store.setdefault(k, []).append(v)
        s = {k: torch.cat(v) for k, v in self.store.items()}
        losses = self.akd.fit(s["image"], s["mask"], s["question"],
                              {k: s[k] for k in ("answer", "caption", "queries", "hidden_q", "hidden_c")})
        updated = {k: v.detach() for k, v in adapter_parameters(self.cloud_student).items()}
        sent, received = self.dwc.compress(updated, self.device_copy)
        for k, d in received.items():  # error feedback: next delta is against what the device holds
            self.device_copy[k] = self.device_copy[k] + d.to(self.device_copy[k].device)
        self.log.append({"losses": losses, "uploaded_samples": len(upload.questions),
                         "uploaded_tokens": int(upload.features.shape[0]), "delta_tensors": len(sent),
                         "delta_params": sum(d.numel() for d in sent.values()),
                         "trainable_params": sum(v.numel() for v in updated.values())})
        self.cloud_version += 1
        return WeightDelta(**{**self._meta(), "model_version": f"v{self.cloud_version}"}, deltas=sent,
                           base_version=f"v{self.cloud_version - 1}", quant=self.cfg.dwc.scheme)
