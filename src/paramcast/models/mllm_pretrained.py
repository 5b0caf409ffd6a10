"""CD-CCA's cloud teacher and device student built from pretrained parts that install with the project.

Seed (cd-cca.txt, sec. 4.1): a LLaMA-Adapter 13B cloud teacher and a 7B device student whose
Q-Former is cut from 12 to 6 layers, both pretrained at web scale and then on the source domain.
The from-scratch pair of :mod:`paramcast.models.mllm` shares one frozen encoder trained on
the same 1-2 K source rows, and its teacher is no better than the student on the target devices
(``benchmarks/results/cdcca_standard.md``). Here the teacher knows more (issue 16):

* **teacher (cloud)**: vision = ImageNet **EfficientNet-Lite2** cut at stride 16 (blocks 0-14, 120
  channels) on the frame upsampled to ``teacher_image`` px (128: an 8x8 grid of tokens); language =
  the **whole 6-layer all-MiniLM-L6-v2**, frozen, run causally (``is_decoder``) over the LM's text so
  every text position carries MiniLM's contextual state (position t reads positions <= t only, so
  captions can be generated); a 4-layer query transformer and a 128-wide, 3-layer LLaMA LM on top.
* **student (device)**: vision = ImageNet **EfficientNet-Lite0** cut at stride 16 (blocks 0-10, 112
  channels) at the frame's 64 px (a 4x4 grid); language = MiniLM's *word embeddings* only (each dataset
  word = the mean of its WordPiece vectors, frozen); a **2-layer** query transformer (half the
  teacher's, as the seed halves its Q-Former) and a 64-wide, 2-layer LLaMA LM.

Both backbones are frozen ImageNet networks: their outputs (the "stems") are computed once per clip
(:func:`encode_rows`, middle frame) and everything trainable reads them. A backbone's tokens are
``proj(dropout(stem))`` + a learned position, plus one mean-pooled token in front (the [CLS] slot of
the ViT encoders): the dropout is the one UTS's Monte Carlo passes switch on (eq. 3). Both pair
members are :class:`~paramcast.models.mllm.MLLM` s (the text embedding swapped), so AKD, DWC,
TENT, CoTTA and the evaluation run on them unchanged.

Decision (the seed's teacher and student share one vision encoder; this teacher does not): the
teacher reads *its own* Lite2 tokens of a frame, so on the cloud it needs the frame's pixels, not
the device's Lite0 tokens. :func:`pretrain_pair` returns the device encoder as ``Pretrained.encoder``
(what UTS and every device method use) and the teacher's as ``PretrainedPair.teacher_encoder``.
``teacher_vision="device"`` is the seed's layout instead: the teacher (still the 6-layer MiniLM
context, 4 query layers, the wider LM, every source row) reads the device encoder's Lite0 tokens,
the ones UTS uploads; the encoder is trained with the student first, then frozen.

Teacher studies (``PairConfig``; ``benchmarks/diagnostics/cdcca_teacher_gap.py`` flags of the same names):
``teacher_frames`` > 1 reads that many frames of the clip (first to last, each frame's tokens with a
code of its time) where the student reads the middle one; ``teacher_tune_blocks`` fine-tunes the last
blocks of the teacher's own backbone; ``teacher_augment_views`` trains it on :func:`camera_jitter`
views of each source clip besides the clean one. Measured on standard (docs/cd_cca.md): none of
them makes the teacher better than the student on the target devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paramcast.data.base import ClipSet, Vocab
from paramcast.methods.cd_cca.akd import add_adapters
from paramcast.methods.cd_cca.method import Pretrained
from paramcast.models.heads import default_device
from paramcast.models.mllm import MLLM, PAD, MLLMConfig, TokenLayout
from paramcast.models.mllm_tasks import MLLMBatch, caption_loss, vqa_loss

__all__ = ["LiteTokenEncoder", "PairConfig", "PretrainedPair", "TextEmbedding", "encode_rows", "pretrain_pair",
           "word_vectors"]

#: stride-16 cut of each backbone: blocks [0, cut)
LITE_CUT = {"efficientnet-lite0": 11, "efficientnet-lite2": 15}
#: most frames a :class:`LiteTokenEncoder` tells apart (EmojiClips clips have 8)
MAX_FRAMES = 8


def _sinusoid(n: int, dim: int) -> torch.Tensor:
    """(n, dim) sinusoidal position code (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(0, dim, 2, dtype=torch.float32) * (torch.log(torch.tensor(1e4)) / dim))
    out = torch.zeros(n, dim)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)[:, : dim // 2]
    return out


def frame_indices(length: int, frames: int) -> torch.Tensor:
    """Which of a clip's ``length`` frames a model reads: 1 -> the middle one (the device's view);
    ``frames`` > 1 -> evenly spaced from the first to the last (motion, appearing, disappearing)."""
    if not 1 <= frames <= min(length, MAX_FRAMES):
        raise ValueError(f"frames={frames}: read 1 to {min(length, MAX_FRAMES)} of a clip's {length} frames")
    if frames == 1:
        return torch.tensor([length // 2])
    return torch.linspace(0, length - 1, frames).round().long()


class LiteTokenEncoder(nn.Module):
    """Frozen ImageNet EfficientNet-Lite to stride 16 -> ``(B, 1 + P, hidden)`` image tokens.

    ``forward`` takes uint8 frames (B, H, W, 3) or float pixels (B, 3, H, W) in [-1, 1] (the
    photometric augmentation of CoTTA); frames are resized to ``image_size``.

    ``tune_blocks`` = k > 0: the cut's last k blocks are trainable (the cloud fine-tunes its own vision,
    as the seeds fine-tune their backbones on the source); :meth:`stem` is then the frozen prefix's
    output (what training caches) and :meth:`tokens` runs the k blocks (BatchNorm statistics stay
    ImageNet's) before the projection."""

    def __init__(self, variant: str = "efficientnet-lite0", image_size: int = 64, hidden: int = 64,
                 dropout: float = 0.1, tune_blocks: int = 0):
        super().__init__()
        from paramcast.models.pretrained import efficientnet_lite

        net = efficientnet_lite(variant, image_size)
        cut = LITE_CUT[variant]
        if not 0 <= tune_blocks <= cut:
            raise ValueError(f"tune_blocks={tune_blocks}: {variant}'s stride-16 cut has {cut} blocks")
        self.backbone = nn.ModuleList([net._conv_stem, net._bn0, net._swish, *net._blocks[:cut - tune_blocks]])
        self.backbone.requires_grad_(False)
        self.tuned = nn.ModuleList(net._blocks[cut - tune_blocks:cut])
        self.size, self.variant = image_size, variant
        channels = net._blocks[cut - 1]._block_args.output_filters
        with torch.no_grad():
            grid = int(self._suffix(self.stem(torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8))).shape[-1])
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(channels, hidden)
        self.pos = nn.Parameter(torch.zeros(1, 1 + grid * grid, hidden))
        nn.init.trunc_normal_(self.pos, std=0.02)
        # which frame a token comes from, for multi-frame input (:meth:`tokens` on (B, F, c, h, w) stems);
        # a sinusoidal code (no random draw, so one-frame encoders keep their bytes), trained with the encoder
        self.time = nn.Parameter(_sinusoid(MAX_FRAMES, hidden) * 0.1)

    def train(self, mode: bool = True) -> LiteTokenEncoder:
        """The backbone stays in eval mode (ImageNet BatchNorm statistics); only the dropout switches."""
        super().train(mode)
        self.backbone.eval()
        self.tuned.eval()
        return self

    def _suffix(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.tuned:
            x = m(x)
        return x

    @torch.no_grad()
    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames -> the frozen backbone's (prefix's) output (B, c, h, w) (Lite preprocessing (x - 127) / 128)."""
        from paramcast.models.pretrained import LITE_MEAN, LITE_STD

        dev = self.pos.device if hasattr(self, "pos") else next(self.backbone.parameters()).device
        if frames.is_floating_point() and frames.dim() == 4 and frames.shape[1] == 3:
            x = frames.to(dev) * 127.5 + 127.5                        # [-1, 1] pixels -> [0, 255]
        else:
            x = frames.to(dev).permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - LITE_MEAN) / LITE_STD
        for m in self.backbone:
            x = m(x)
        return x

    def tokens(self, stem: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) stem -> (B, 1 + h*w, hidden): the mean-pooled token, then the grid.

        (B, F, c, h, w) stems of F frames -> (B, F * (1 + h*w), hidden): each frame's tokens as above
        plus the code of its place in time (``self.time[f]``), frame after frame."""
        if stem.dim() == 5:
            b, f = stem.shape[:2]
            x = self.tokens(stem.flatten(0, 1)).unflatten(0, (b, f)) + self.time[:f, None]
            return x.flatten(1, 2)
        grid = self._suffix(stem.float()).flatten(2).transpose(1, 2)   # (B, P, c)
        x = torch.cat([grid.mean(1, keepdim=True), grid], 1)
        return self.proj(self.drop(x)) + self.pos

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.tokens(self.stem(frames))


def word_vectors(entries: list[str]) -> torch.Tensor:
    """MiniLM's pretrained input vectors (len(entries), 384): each entry (a word or a multi-word answer)
    = the mean of its WordPiece embeddings; the dataset's specials are BERT's own tokens."""
    from paramcast.models.pretrained import minilm_embeddings, minilm_tokenizer

    tok = minilm_tokenizer()
    emb = minilm_embeddings()[0].word_embeddings.weight.detach()
    out = torch.zeros(len(entries), emb.shape[1])
    for i, w in enumerate(entries):
        if w in ("[PAD]", "[CLS]", "[SEP]", "[UNK]"):
            ids = [tok.convert_tokens_to_ids(w)]
        else:
            ids = tok(w, add_special_tokens=False)["input_ids"] or [tok.unk_token_id]
        out[i] = emb[ids].mean(0)
    return out


class TextEmbedding(nn.Module):
    """The LM's input embedding: frozen MiniLM vectors per LM token -> (optionally) MiniLM's 6 frozen
    transformer layers, causal -> trainable ``Linear(384, hidden)``.

    With ``context`` the MiniLM states of a text row depend on that row only; rows seen in training mode
    are cached (the ground-truth questions and captions of pretraining: MiniLM runs once per row)."""

    def __init__(self, vectors: torch.Tensor, hidden: int, context: bool = False, cache_rows: int = 50_000):
        super().__init__()
        self.register_buffer("vectors", vectors.clone())
        self.proj = nn.Linear(vectors.shape[1], hidden)
        self.bert = None
        if context:
            from paramcast.models.pretrained import minilm_model

            self.bert = minilm_model(causal=True).requires_grad_(False)
        self.cache_rows = cache_rows
        self._cache: dict[bytes, torch.Tensor] = {}

    def train(self, mode: bool = True) -> TextEmbedding:
        super().train(mode)
        if self.bert is not None:
            self.bert.eval()
        return self

    @torch.no_grad()
    def _context(self, text: torch.Tensor) -> torch.Tensor:
        mask = (text != PAD).long()
        mask[:, 0] = 1                                                   # a row of pads still attends somewhere
        return self.bert(inputs_embeds=self.vectors[text], attention_mask=mask).last_hidden_state

    def _cached_context(self, text: torch.Tensor) -> torch.Tensor:
        keys = [row.cpu().numpy().tobytes() for row in text]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            states = self._context(text[missing])
            if len(self._cache) + len(missing) <= self.cache_rows:
                self._cache.update({keys[i]: states[j] for j, i in enumerate(missing)})
            else:
                return self._context(text)
        return torch.stack([self._cache[k] for k in keys])

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        if self.bert is None:
            return self.proj(self.vectors[text])
        return self.proj(self._cached_context(text) if self.training else self._context(text))


def _mllm(cfg: MLLMConfig, layout: TokenLayout, vectors: torch.Tensor, context: bool) -> MLLM:
    model = MLLM(cfg, layout)
    model.lm.set_input_embeddings(TextEmbedding(vectors, cfg.lm_hidden, context=context))
    return model


@dataclass(frozen=True)
class PairConfig:
    """The pretrained pair (module docstring) and its source-domain training."""

    teacher: MLLMConfig = field(default_factory=lambda: MLLMConfig(
        vit_hidden=128, num_queries=8, q_hidden=96, q_layers=4, lm_hidden=128, lm_layers=3))
    student: MLLMConfig = field(default_factory=lambda: MLLMConfig(
        vit_hidden=64, num_queries=8, q_hidden=64, q_layers=2, lm_hidden=64, lm_layers=2))
    teacher_vision: str = "efficientnet-lite2"   # or "device": the teacher reads the device encoder's tokens
                                                 # (the seed's shared encoder; what UTS uploads)
    teacher_image: int = 128          # the teacher's input size (frames are upsampled): an 8x8 token grid
    student_vision: str = "efficientnet-lite0"
    student_image: int = 64           # the device's input size: a 4x4 token grid
    teacher_context: bool = True      # MiniLM's 6 transformer layers in the teacher's LM input
    teacher_frames: int = 1           # frames of a clip the teacher reads (the student reads the middle one)
    teacher_tune_blocks: int = 0      # last blocks of the teacher's own backbone it fine-tunes (Lite2 only)
    teacher_augment_views: int = 0    # camera_jitter views per source clip in the teacher's training (0: clean)
    teacher_epochs: int = 8
    student_epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    lora_rank: int = 4
    seed: int = 0


@dataclass
class PretrainedPair(Pretrained):
    teacher_encoder: LiteTokenEncoder | None = None   # the teacher's own vision (Lite2), frozen
    log: dict = field(default_factory=dict)


@torch.no_grad()
def encode_rows(encoder: LiteTokenEncoder, clips: ClipSet, chunk: int = 128, text_width: tuple[int, int] | None = None,
                frames: int = 1) -> MLLMBatch:
    """Like :func:`~paramcast.models.mllm_tasks.make_batch` (middle frame, eval-mode tokens), with the
    backbone run once per clip (rows of a clip share its frames). ``text_width``: keep only the first
    (question, caption) columns (pads beyond the longest row cost LM time). ``frames`` > 1: the tokens
    of that many frames (:func:`frame_indices`), as the multi-frame teacher reads them; the batch's raw
    ``frames`` stay the middle one."""
    was = encoder.training
    encoder.eval()
    dev = encoder.pos.device
    if len(clips):
        stems, inv = _stems(encoder, clips, chunk, frames, half=False)
        image = encoder.tokens(stems)[inv.to(dev)]
    else:
        image = torch.zeros(0, 0, 0, device=dev)
    encoder.train(was)
    q, c = clips.question, clips.caption
    if text_width is not None:
        q, c = q[:, : text_width[0]], c[:, : text_width[1]]
    return MLLMBatch(clips.frames[:, clips.frames.shape[1] // 2].contiguous().to(dev), image,
                     *(t.to(dev) for t in (q, c, clips.answer, clips.candidates, clips.mc_label, clips.category)))


def _clips(clips: ClipSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique clip ids, the first row of each, and each row's clip index."""
    n = len(clips)
    uniq, inv = torch.unique(clips.clip_id, return_inverse=True)
    first = torch.full((len(uniq),), n, dtype=torch.int64).scatter_reduce_(0, inv, torch.arange(n), reduce="amin")
    return uniq, first, inv


@torch.no_grad()
def _stems(encoder: LiteTokenEncoder, clips: ClipSet, chunk: int = 128, frames: int = 1, half: bool = True,
           gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-clip stems, float16 (the training cache) unless ``half=False``: (K, c, h, w) of the middle frame,
    or (K, F, c, h, w) for ``frames`` = F > 1; row -> clip index (N,)). With ``gen``: of a
    :func:`camera_jitter` view of each clip (one draw per clip, shared by its frames)."""
    _, first, inv = _clips(clips)
    idx = frame_indices(clips.frames.shape[1], frames)
    out = []
    for i in range(0, len(first), chunk):
        pix = clips.frames[first[i:i + chunk]][:, idx]                 # (k, F, H, W, 3) uint8
        x = pix.flatten(0, 1) if gen is None else camera_jitter(pix, gen).flatten(0, 1)
        out.append(encoder.stem(x))
    stems = torch.cat(out)
    stems = stems.half() if half else stems
    return (stems if frames == 1 else stems.unflatten(0, (len(first), frames))), inv


def camera_jitter(frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 (K, F, H, W, 3) -> float pixels (K * F -> (K, F, 3, H, W)) in [-1, 1]: one random camera per
    clip (leading index), the same for its F frames. The standard photometric recipe, not fitted to any
    device: SimCLR's colour distortion at strength 0.5 (brightness and contrast x[0.6, 1.4]), a white-balance
    cast x[0.8, 1.2] per channel, sensor noise of std up to 12 grey levels, and with p = 0.5 (SimCLR's) a
    blur of one or two binomial passes."""
    K = frames.shape[0]
    x = frames.permute(0, 1, 4, 2, 3).float()                          # (K, F, 3, H, W), 0..255

    def u(*shape):
        return torch.rand(K, *shape, generator=gen)

    mean = x.mean((1, 2, 3, 4), keepdim=True)
    x = x * (0.6 + 0.8 * u(1, 1, 1, 1)) * (0.8 + 0.4 * u(1, 3, 1, 1))   # brightness, cast
    x = (x - mean) * (0.6 + 0.8 * u(1, 1, 1, 1)) + mean                # contrast about the clip's mean
    passes = (u() < 0.5).long() * (1 + (u() < 0.5).long())             # 0, 1 or 2 blur passes
    k = torch.tensor([0.25, 0.5, 0.25])
    for p in (1, 2):
        m = passes >= p
        if m.any():
            y = x[m]
            y = F.conv1d(F.pad(y.reshape(-1, 1, y.shape[-1]), (1, 1), mode="replicate"), k.view(1, 1, 3)).view(y.shape)
            y = y.transpose(-1, -2)
            y = F.conv1d(F.pad(y.reshape(-1, 1, y.shape[-1]), (1, 1), mode="replicate"), k.view(1, 1, 3)).view(y.shape)
            x[m] = y.transpose(-1, -2)
    x = x + torch.randn(x.shape, generator=gen) * 12 * u(1, 1, 1, 1)
    return (x.clamp(0, 255) / 127.5 - 1.0)


def _text_width(clips: ClipSet) -> tuple[int, int]:
    def width(t: torch.Tensor) -> int:
        return int((t != PAD).sum(1).max()) if len(t) else 1

    return width(clips.question), width(clips.caption) + 1


def _fit(model: MLLM, encoder: LiteTokenEncoder, clips: ClipSet, epochs: int, cfg: PairConfig,
         gen: torch.Generator, frames: int = 1, views: int = 0) -> dict:
    """Supervised VQA + captioning of ``model`` and the encoder's trainable parts, on cached stems.
    ``views`` > 0: the stems of that many :func:`camera_jitter` views of each clip are cached besides the
    clean one, and every row of a batch reads one of the 1 + ``views`` at random."""
    import time

    t0 = time.perf_counter()
    stems, inv = _stems(encoder, clips, frames=frames)
    if views:
        stems = torch.stack([stems, *(_stems(encoder, clips, frames=frames, gen=gen)[0] for _ in range(views))])
    dev = encoder.pos.device
    wq, wc = _text_width(clips)
    q, c = clips.question[:, :wq].to(dev), clips.caption[:, :wc].to(dev)
    ans = clips.answer.to(dev)
    t_stem = time.perf_counter() - t0
    params = [p for p in [*model.parameters(), *encoder.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = max(1, epochs * -(-len(clips) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    encoder.train()
    losses = []
    for _ in range(epochs):
        total, n = 0.0, 0
        for idx in torch.randperm(len(clips), generator=gen).split(cfg.batch_size):
            rows = inv[idx]
            x = stems[rows] if not views else stems[torch.randint(0, views + 1, (len(idx),), generator=gen), rows]
            image = encoder.tokens(x.to(dev))
            i = idx.to(dev)
            loss = vqa_loss(model, image, None, q[i], ans[i])[0] + caption_loss(model, image, None, c[i])[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        losses.append(total / max(n, 1))
    model.eval()
    encoder.eval().requires_grad_(False)
    return {"rows": len(clips), "clips": int(len(inv.unique())), "views": 1 + views, "stem_seconds": t_stem,
            "seconds": time.perf_counter() - t0, "loss": losses}


def pretrain_pair(source: ClipSet, vocab: Vocab, cfg: PairConfig = PairConfig(),
                  device: str | torch.device | None = None, teacher_source: ClipSet | None = None) -> PretrainedPair:
    """Source-domain training of the pair: the teacher (and its token projection) on ``teacher_source``
    (default ``source``), the student (and the device encoder's projection) on ``source``. The
    backbones and MiniLM stay frozen; the student gets zero-initialised LoRA adapters, as in
    :func:`~paramcast.methods.cd_cca.method.pretrain`."""
    teacher_source = source if teacher_source is None else teacher_source
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    answers = getattr(vocab, "mc_answers", None) or vocab.answers
    layout = TokenLayout(len(vocab.words), len(answers))
    n_cap = int((teacher_source.caption != 0).sum(1).max()) if len(teacher_source) else 8
    max_text = max(source.question.shape[1], teacher_source.question.shape[1], n_cap) + 4
    dev = torch.device(device or default_device())
    # the LM vocabulary's input vectors: words, answer classes, [CAP] (= MiniLM's [CLS])
    entries = [*vocab.words, *answers, "[CLS]"]
    vectors = word_vectors(entries)
    vectors[PAD] = 0.0
    s_cfg = MLLMConfig(**{**cfg.student.__dict__, "max_text": max_text})
    shared = cfg.teacher_vision == "device"
    if shared and cfg.teacher_tune_blocks:
        raise ValueError("teacher_tune_blocks needs the teacher's own vision: the device encoder is shared and frozen")
    t_cfg = MLLMConfig(**{**cfg.teacher.__dict__, "max_text": max_text,
                          **({"vit_hidden": s_cfg.vit_hidden} if shared else {})})
    s_enc = LiteTokenEncoder(cfg.student_vision, cfg.student_image, s_cfg.vit_hidden, s_cfg.vit_dropout).to(dev)
    teacher = _mllm(t_cfg, layout, vectors, cfg.teacher_context).to(dev)
    student = _mllm(s_cfg, layout, vectors, False).to(dev)
    log = {}
    if shared:  # the seed's layout: the device encoder (trained with the student, then frozen) feeds both
        log["student"] = _fit(student, s_enc, source, cfg.student_epochs, cfg, gen)
        t_enc = s_enc
        s_enc.time.requires_grad_(cfg.teacher_frames > 1)   # only the teacher reads frames' time codes
    else:
        t_enc = LiteTokenEncoder(cfg.teacher_vision, cfg.teacher_image, t_cfg.vit_hidden, t_cfg.vit_dropout,
                                 cfg.teacher_tune_blocks).to(dev)
    log["teacher"] = _fit(teacher, t_enc, teacher_source, cfg.teacher_epochs, cfg, gen, cfg.teacher_frames,
                          cfg.teacher_augment_views)
    teacher.requires_grad_(False)
    teacher.lm.embed_tokens._cache.clear()
    if not shared:
        log["student"] = _fit(student, s_enc, source, cfg.student_epochs, cfg, gen)
    return PretrainedPair(s_enc, teacher, add_adapters(student, cfg.lora_rank), vocab, max_caption=n_cap,
                          teacher_encoder=t_enc, log=log)
