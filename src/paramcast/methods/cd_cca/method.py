"""CD-CCA (seed Algorithm 1) behind the :class:`~paramcast.methods.base.Method` interface.

    device: round's samples -> student inference -> UTS (eq. 2-4) -> Upload of kept tokens
    cloud:  Upload -> teacher pseudo-labels + AKD on every upload so far (eq. 5-6) -> DWC (eq. 7) -> WeightDelta
    device: WeightDelta -> base + delta (eq. 8) -> predict

**Halves.** :class:`CDCCADevice` is what a phone runs (its student copy, UTS, the delta version it
holds); :class:`CDCCACloud` is what the service holds: the teacher, and per ``device_id`` a cloud
student copy, the copy of what that device holds (the delta base), AKD's optimiser and the device's
uploads so far (:class:`CloudDeviceState`). They exchange :class:`~paramcast.types.Upload` and
:class:`~paramcast.types.WeightDelta` only. :class:`CDCCA` is the one-process view the benchmark
drives: one device half and one cloud half, the cloud's state for the device created when the method
is (re)set, so a run's random draws come in the same order as before the split.

**Versions.** A device holding ``v{k}`` (``k`` deltas installed) uploads with ``model_version="v{k}"``;
the cloud answers ``WeightDelta(base_version="v{k}", model_version="v{k+1}")``. A device that
reset (``v0``) while the cloud's record says otherwise is re-based: the cloud's copy of what it
holds goes back to the pretrained adapters, so the next delta carries the whole update (the cloud
student keeps what it learnt). Any other mismatch is refused (409): the cloud cannot know what the
device holds. Installing the delta a device already holds again is a no-op, so a client's
"last good update" fallback is harmless.

**Registry.** Every MLLM method (this module's :class:`MLLMSourceOnly`, :class:`CDCCA`; the KD and
TTA baselines) is built either from shapes (``num_words``, ``num_answers``, ``teacher`` /
``student`` :class:`MLLMConfig`, ``max_caption``, ``lora_rank``: what :func:`mllm_shapes` reads off
the data; ``fit`` then pretrains, :func:`pretrain`'s recipe) or around an already pretrained
:class:`Pretrained` (the benchmark pretrains once and starts every method from it). A checkpoint
holds the encoder, teacher and student and those shapes; nothing is pickled.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from paramcast.data.base import ClipSet, Vocab
from paramcast.losses.entropy import entropy
from paramcast.methods.base import Method, UploadRejected
from paramcast.methods.cd_cca.akd import AdapterKD, AKDConfig, adapter_parameters, add_adapters, pseudo_label
from paramcast.methods.cd_cca.dwc import DWCConfig, DynamicWeightCompression
from paramcast.methods.cd_cca.uts import UncertaintyTokenSampler, UTSConfig, unpack_tokens
from paramcast.models.heads import default_device
from paramcast.models.mllm import (
    MLLM,
    MLLMConfig,
    TokenLayout,
    VisionEncoder,
    student_config,
    teacher_config,
)
from paramcast.models.mllm_tasks import (
    MLLMBatch,
    answer_logits,
    batch_from_frames,
    caption_loss,
    greedy_caption,
    make_batch,
    vqa_loss,
)
from paramcast.models.training import build_config
from paramcast.registry import register
from paramcast.types import Update, Upload, WeightDelta

__all__ = ["CDCCA", "CDCCACloud", "CDCCAConfig", "CDCCADevice", "CloudDeviceState", "MLLMSourceOnly",
           "PretrainConfig", "Pretrained", "mllm_shapes", "pretrain", "uncertainty"]

TASK = "mllm"


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
    student: MLLM           # with (zero-initialised) LoRA adapters injected once trained
    vocab: Vocab | None     # the data's vocabulary (None when rebuilt from shapes or a checkpoint)
    max_caption: int        # greedy decoding length
    lora_rank: int = 4
    adapted: bool = True    # LoRA adapters injected into the student

    @classmethod
    def build(cls, num_words: int, num_answers: int, teacher: MLLMConfig, student: MLLMConfig, max_caption: int,
              lora_rank: int = 4, device: str | torch.device = "cpu", vocab: Vocab | None = None) -> Pretrained:
        """Untrained modules of these shapes (random init from the global RNG: encoder, teacher, student)."""
        layout = TokenLayout(num_words, num_answers)
        dev = torch.device(device)
        return cls(VisionEncoder(teacher).to(dev), MLLM(teacher, layout).to(dev), MLLM(student, layout).to(dev),
                   vocab, max_caption, lora_rank, adapted=False)

    def add_adapters(self) -> None:
        if not self.adapted:
            add_adapters(self.student, self.lora_rank)
            self.adapted = True


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


def mllm_shapes(source: ClipSet, vocab: Vocab, cfg: PretrainConfig = PretrainConfig(),
                teacher_source: ClipSet | None = None) -> dict[str, Any]:
    """The MLLM methods' shape arguments for this data: vocabulary sizes, teacher / student configs with
    the data's frame size and longest text, the greedy caption length."""
    teacher_source = source if teacher_source is None else teacher_source
    # Multiple-choice candidates may lie outside the answer classes (Vocab.mc_answers extends
    # Vocab.answers); every candidate gets an answer token so MC can score it.
    n_answers = len(getattr(vocab, "mc_answers", None) or vocab.answers)
    n_cap = int((teacher_source.caption != 0).sum(1).max()) if len(teacher_source) else 8
    size = int(source.frames.shape[-3])                      # the data's frame size (tiny: 32, else 64)
    n_q = max(source.question.shape[1], teacher_source.question.shape[1])
    t_cfg = dataclasses.replace(cfg.teacher, max_text=max(n_q, n_cap) + 4, image_size=size)
    s_cfg = dataclasses.replace(cfg.student, max_text=t_cfg.max_text, image_size=size)
    return {"num_words": len(vocab.words), "num_answers": n_answers, "teacher": t_cfg, "student": s_cfg,
            "max_caption": n_cap, "lora_rank": cfg.lora_rank}


def train_pretrained(pre: Pretrained, source: ClipSet, cfg: PretrainConfig, teacher_source: ClipSet | None = None,
                     gen: torch.Generator | None = None) -> Pretrained:
    """Source-domain training of ``pre``'s modules: encoder + teacher jointly on raw frames, the teacher
    then on the frozen encoder's tokens, the student on them; LoRA adapters injected last."""
    teacher_source = source if teacher_source is None else teacher_source
    gen = torch.Generator().manual_seed(cfg.seed) if gen is None else gen
    encoder, teacher, student = pre.encoder, pre.teacher, pre.student
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
    pre.add_adapters()
    return pre


def pretrain(source: ClipSet, vocab: Vocab, cfg: PretrainConfig = PretrainConfig(),
             device: str | torch.device | None = None, teacher_source: ClipSet | None = None) -> Pretrained:
    """Source-domain training: encoder + teacher jointly, then each model on the frozen encoder's tokens.

    ``teacher_source`` (default ``source``): the cloud's source corpus for encoder and teacher, which may
    be larger than the student's ``source`` (the seed's cloud model is the one with large-scale
    pretraining). Models live on ``device`` (default: cuda when available); random draws come from
    CPU generators, so a seed gives the same draws on either."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    pre = Pretrained.build(**mllm_shapes(source, vocab, cfg, teacher_source), device=device or default_device(),
                           vocab=vocab)
    return train_pretrained(pre, source, cfg, teacher_source, gen)


@torch.no_grad()
def uncertainty(model: MLLM, batch: MLLMBatch, max_caption: int) -> torch.Tensor:
    """Eq. 2 per sample: entropy of the answer distribution + mean per-token entropy of the greedy
    caption (the seed's instance produces both an answer and a caption here)."""
    model.eval()
    logits, _ = answer_logits(model, batch.image, None, batch.question)
    _, cap_ent = greedy_caption(model, batch.image, None, max_caption)
    return entropy(logits) + cap_ent


def _config(cls: type | None, config: Any, overrides: dict[str, Any]) -> Any:
    """A method config (:func:`~paramcast.models.training.build_config`); None for a method without one."""
    if cls is None:
        if config or overrides:
            raise TypeError(f"this method takes no config; got {sorted({**(config or {}), **overrides})}")
        return None
    return build_config(cls, config, overrides)


def _mllm_config(value: MLLMConfig | dict | None, default) -> MLLMConfig:
    return default() if value is None else value if isinstance(value, MLLMConfig) else MLLMConfig(**value)


def _as_batch(pre: Pretrained, batch: Any) -> MLLMBatch:
    """A ClipSet (raw frames) goes through the shared encoder; an MLLMBatch is used as it is."""
    return batch if isinstance(batch, MLLMBatch) else make_batch(pre.encoder, batch)


@register("mllm-source-only")
class MLLMSourceOnly(Method):
    """The pretrained MLLM student, never adapted (CD-CCA's Tables 1-2, first row).

    ``MLLMSourceOnly(pretrained)`` starts from an already pretrained :class:`Pretrained`;
    ``MLLMSourceOnly(num_words=, num_answers=, teacher=, student=, max_caption=)`` (what
    :func:`mllm_shapes` gives, and what a checkpoint stores) builds fresh modules that :meth:`fit`
    pretrains on a ClipSet (``pretrain``: a :class:`PretrainConfig` or its dict). Keyword
    ``overrides`` set fields of ``config_class`` (CD-CCA's, TENT's, CoTTA's config)."""

    task: ClassVar[str] = TASK
    config_class: ClassVar[type | None] = None

    def __init__(self, pretrained: Pretrained | None = None, config: Any = None, *, num_words: int | None = None,
                 num_answers: int | None = None, teacher: MLLMConfig | dict | None = None,
                 student: MLLMConfig | dict | None = None, max_caption: int = 8, lora_rank: int = 4,
                 pretrain: PretrainConfig | dict | None = None, device: str | None = None, seed: int = 0,
                 progress: bool = False, **overrides: Any):
        self.config = self.settle_config(_config(self.config_class, config, overrides))
        self.seed, self.progress = seed, progress
        pcfg = pretrain if isinstance(pretrain, PretrainConfig) else \
            _config(PretrainConfig, pretrain, {}) if pretrain is not None else PretrainConfig()
        self.pretrain_config = dataclasses.replace(pcfg, seed=seed, lora_rank=lora_rank)
        if pretrained is None:
            if num_words is None or num_answers is None:
                raise TypeError(f"{type(self).__name__} needs a Pretrained, or num_words and num_answers "
                                "(paramcast.methods.cd_cca.mllm_shapes gives them for a dataset)")
            torch.manual_seed(seed)
            pretrained = Pretrained.build(num_words, num_answers, _mllm_config(teacher, teacher_config),
                                          _mllm_config(student, student_config), max_caption, lora_rank,
                                          device or default_device())
        self.pre = pretrained
        self.device = next(pretrained.student.parameters()).device
        self.reset()  # subclasses build their state in reset()

    @property
    def num_answers(self) -> int:
        """The answer classes of the MLLM's token layout: what a history label indexes (``/v1/info``'s
        ``num_labels``; direct-answer VQA is one next-token choice among them)."""
        return self.pre.teacher.layout.n_answers

    @classmethod
    def settle_config(cls, config: Any) -> Any:
        """The config this method runs (the KD baselines fix CD-CCA's feature loss here)."""
        return config

    # --- cloud: training ---------------------------------------------------------------------
    def fit(self, history: ClipSet, teacher_history: ClipSet | None = None) -> None:
        """Pretrain encoder, teacher and student on the source history (:func:`pretrain`'s recipe);
        nothing to do for a method built around an already pretrained :class:`Pretrained`."""
        if self.pre.adapted:
            return
        train_pretrained(self.pre, history, self.pretrain_config, teacher_history)
        self.reset()

    # --- device ------------------------------------------------------------------------------
    def predict(self, batch: MLLMBatch | ClipSet) -> torch.Tensor:
        with torch.no_grad():
            b = _as_batch(self.pre, batch)
            return answer_logits(self.model.eval(), b.image, None, b.question)[0]

    def reset(self) -> None:
        self.model = copy.deepcopy(self.pre.student).eval()

    def batch_from_tensors(self, tensors: dict[str, torch.Tensor], device_id: str) -> MLLMBatch:
        """A saved MLLM stream: ``frames`` (N, H, W, 3) uint8, ``question`` (N, L), optional ``caption``,
        ``answer``, ``candidates``, ``mc_label``, ``category`` (what ``paramcast train`` writes)."""
        return batch_from_frames(self.pre.encoder, tensors["frames"], **{k: v for k, v in tensors.items()
                                                                         if k not in ("frames", "device")})

    # --- checkpoints -------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        """Encoder, teacher and student: the whole pretrained system (the device's model is a copy)."""
        return {"encoder": self.pre.encoder, "teacher": self.pre.teacher, "student": self.pre.student}

    def checkpoint_args(self) -> dict[str, Any]:
        pre = self.pre
        args = {"num_words": pre.teacher.layout.n_words, "num_answers": pre.teacher.layout.n_answers,
                "teacher": dataclasses.asdict(pre.teacher.cfg), "student": dataclasses.asdict(pre.student.cfg),
                "max_caption": pre.max_caption, "lora_rank": pre.lora_rank, "seed": self.seed,
                "pretrain": dataclasses.asdict(self.pretrain_config)}
        if self.config is not None:
            args["config"] = dataclasses.asdict(self.config)
        return args

    def load_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        if any("lora_" in k for k in tensors):  # a fitted system: the student carries its adapters
            self.pre.add_adapters()
        super().load_state(meta, tensors, source)
        self.pre.encoder.requires_grad_(False)
        self.pre.teacher.requires_grad_(False)


@dataclass(frozen=True)
class CDCCAConfig:
    uts: UTSConfig = field(default_factory=UTSConfig)
    akd: AKDConfig = field(default_factory=AKDConfig)
    dwc: DWCConfig = field(default_factory=DWCConfig)
    upload_quant: str = "int8"   # how uploaded token features travel: blockwise int8 (64 = one token's
                                 # channels per block) halves fp16's bytes; "fp16" is an ablation row
    device_id: str = "device-0"  # the one-process view's device (the bench's); a served device names its own
    seed: int = 0


def _meta(device_id: str, method: str, version: int) -> dict:
    return {"device_id": device_id, "method": method, "task": TASK, "model_version": f"v{version}"}


class CDCCADevice:
    """CD-CCA on one phone: the student copy it runs, UTS (eq. 2-4) for its uploads, eq. 8 for deltas."""

    def __init__(self, pre: Pretrained, cfg: CDCCAConfig, device_id: str, name: str = "cd-cca"):
        self.pre, self.cfg, self.device_id, self.name = pre, cfg, device_id, name
        self.reset()

    def reset(self) -> None:
        self.model = copy.deepcopy(self.pre.student).eval()
        self.uts = UncertaintyTokenSampler(self.cfg.uts, self.cfg.seed)
        self.version = 0        # deltas installed so far

    def device_step(self, batch: MLLMBatch | ClipSet) -> Upload:
        b = _as_batch(self.pre, batch)
        u = uncertainty(self.model, b, self.pre.max_caption)
        return self.uts(self.pre.encoder, b.frames, b.image, u, b.question,
                        _meta(self.device_id, self.name, self.version), self.cfg.upload_quant)

    def apply(self, update: Update) -> None:
        if not isinstance(update, WeightDelta):
            raise TypeError(f"{self.name} installs WeightDelta, got {type(update).__name__}")
        if update.model_version == f"v{self.version}" and self.version > 0:
            return  # the delta this device already holds (a client's last-good fallback)
        if update.base_version != f"v{self.version}":
            raise ValueError(f"delta computed against {update.base_version!r}, device holds v{self.version}")
        DynamicWeightCompression.apply(dict(self.model.named_parameters()), update.deltas)
        self.version += 1

    def predict(self, batch: MLLMBatch | ClipSet) -> torch.Tensor:
        with torch.no_grad():
            b = _as_batch(self.pre, batch)
            return answer_logits(self.model.eval(), b.image, None, b.question)[0]


@dataclass
class CloudDeviceState:
    """What the cloud keeps for one device."""

    student: MLLM                          # the cloud's copy of this device's student, trained by AKD
    held: dict[str, torch.Tensor]          # what the device holds now (the next delta's base)
    akd: AdapterKD
    store: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # every upload so far, pseudo-labelled
    version: int = 0                       # deltas sent
    log: list[dict] = field(default_factory=list)


class CDCCACloud:
    """CD-CCA's cloud: the teacher, and per ``device_id`` a :class:`CloudDeviceState` (AKD eq. 5-6, DWC eq. 7)."""

    def __init__(self, pre: Pretrained, cfg: CDCCAConfig, name: str = "cd-cca"):
        self.pre, self.cfg, self.name = pre, cfg, name
        self.dwc = DynamicWeightCompression(cfg.dwc)
        self.devices: dict[str, CloudDeviceState] = {}
        mcfg = pre.student.cfg
        self.n_tokens, self.token_dim = mcfg.n_image_tokens, mcfg.vit_hidden
        self.num_words, self.max_question = pre.student.layout.n_words, mcfg.max_text - 1

    def _base(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in adapter_parameters(self.pre.student).items()}

    def state(self, device_id: str) -> CloudDeviceState:
        """This device's state, created on its first upload (a student copy, fresh AKD projections)."""
        if device_id not in self.devices:
            student = copy.deepcopy(self.pre.student)
            self.devices[device_id] = CloudDeviceState(student, self._base(),
                                                       AdapterKD(self.pre.teacher, student, self.cfg.akd, self.cfg.seed))
        return self.devices[device_id]

    def forget(self, device_id: str) -> None:
        self.devices.pop(device_id, None)

    def _check(self, up: Upload) -> None:
        f, t = up.features, up.text
        if up.positions is None or up.samples is None or t is None:
            raise UploadRejected(f"{self.name} uploads carry positions, samples and text (the UTS tokens and questions)")
        if t.dtype != torch.int64 or t.ndim != 2 or not 1 <= t.shape[0] <= f.shape[0] or t.shape[1] > self.max_question:
            raise UploadRejected(f"text must be int64 (S, L) with 1 <= S <= {f.shape[0]} and L <= {self.max_question}")
        if f.shape[1] != self.token_dim:
            raise UploadRejected(f"token features must have {self.token_dim} channels, got {f.shape[1]}")
        if int(t.min()) < 0 or int(t.max()) >= self.num_words:
            raise UploadRejected(f"text word ids must lie in [0, {self.num_words})")
        for name, tensor, n in (("samples", up.samples, t.shape[0]), ("positions", up.positions, self.n_tokens)):
            if int(tensor.min()) < 0 or int(tensor.max()) >= n:
                raise UploadRejected(f"{name} must lie in [0, {n})")

    def cloud_step(self, upload: Upload) -> WeightDelta:
        self._check(upload)
        # AKD trains: leave the service's inference mode (the upload's tensors are ordinary ones, and a
        # new device's student copy and projections must be ordinary parameters too).
        with torch.inference_mode(False), torch.enable_grad():
            s = self.state(upload.device_id)
            if upload.model_version != f"v{s.version}":
                if upload.model_version != "v0":
                    raise UploadRejected(f"device {upload.device_id} holds {upload.model_version[:16]!r}, but the "
                                         f"cloud sent it v{s.version}: reset the device (v0) to re-base", 409,
                                         "version_conflict")
                s.held, s.version = self._base(), 0  # the device reset: re-base on the pretrained adapters
            return self._step(upload, s)

    def _step(self, upload: Upload, s: CloudDeviceState) -> WeightDelta:
        dev = next(s.student.parameters()).device
        image, mask = (t.to(dev) for t in unpack_tokens(upload, self.n_tokens))
        questions = upload.text.to(dev)
        pl = pseudo_label(self.pre.teacher, image, mask, questions, self.pre.max_caption)
        for k, v in {"image": image, "mask": mask, "question": questions, **pl}.items():
            s.store.setdefault(k, []).append(v)
        st = {k: torch.cat(v) for k, v in s.store.items()}
        losses = s.akd.fit(st["image"], st["mask"], st["question"],
                           {k: st[k] for k in ("answer", "caption", "queries", "hidden_q", "hidden_c")})
        updated = {k: v.detach() for k, v in adapter_parameters(s.student).items()}
        sent, received = self.dwc.compress(updated, s.held)
        for k, d in received.items():  # error feedback: next delta is against what the device holds
            s.held[k] = s.held[k] + d.to(s.held[k].device)
        s.log.append({"losses": losses, "uploaded_samples": len(upload.text),
                      "uploaded_tokens": int(upload.features.shape[0]), "delta_tensors": len(sent),
                      "delta_params": sum(d.numel() for d in sent.values()),
                      "trainable_params": sum(v.numel() for v in updated.values())})
        s.version += 1
        return WeightDelta(**_meta(upload.device_id, self.name, s.version), deltas=sent,
                           base_version=f"v{s.version - 1}", quant=self.cfg.dwc.scheme)

    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]:
        """One AKD run per upload (each device trains its own student copy): the loop itself."""
        return [self.cloud_step(u) for u in uploads]


@register("cd-cca")
class CDCCA(MLLMSourceOnly):
    """Cloud-device collaborative continual adaptation: UTS uplink, AKD on the cloud, DWC downlink."""

    collaborative = True
    config_class = CDCCAConfig

    def reset(self) -> None:
        self.device_side = CDCCADevice(self.pre, self.config, self.config.device_id, self.name)
        self.cloud_side = CDCCACloud(self.pre, self.config, self.name)
        self.cloud_side.state(self.config.device_id)  # now, not on the first upload: the RNG order of one run

    @property
    def model(self) -> MLLM:
        """The (one-process view's) device model."""
        return self.device_side.model

    @property
    def cloud_student(self) -> MLLM:
        return self.cloud_side.state(self.config.device_id).student

    @property
    def log(self) -> list[dict]:
        return self.cloud_side.state(self.config.device_id).log

    def device_half(self, device_id: str | None = None) -> CDCCADevice:
        return CDCCADevice(self.pre, self.config, device_id or self.config.device_id, self.name)

    def cloud_half(self) -> CDCCACloud:
        return self.cloud_side

    def forget(self, device_id: str) -> None:
        self.cloud_side.forget(device_id)

    def device_step(self, batch: MLLMBatch | ClipSet) -> Upload:
        return self.device_side.device_step(batch)

    def apply(self, update: Update) -> None:
        self.device_side.apply(update)

    def predict(self, batch: MLLMBatch | ClipSet) -> torch.Tensor:
        return self.device_side.predict(batch)

    def cloud_step(self, upload: Upload) -> WeightDelta:
        return self.cloud_side.cloud_step(upload)

    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]:
        return self.cloud_side.cloud_step_batch(uploads)
