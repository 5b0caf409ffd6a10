"""All-in-One-style multi-modal encoder: the frozen feature extractor shared by cloud and device.

CDC-MMPG eq. 1–4 (seed ``cdc-mmpg.txt``, §3.1): visual patch tokens per frame (F_v, eq. 1), BERT word
embeddings only for the question (F_l, eq. 2), spatial-temporal position embeddings and
modality-type embeddings, then a fusion transformer g(·) of ``fusion_layers`` layers (eq. 4) that
gives one multi-modal feature per frame, ``F_m = {F_m^i}`` of shape (B, T, C).

**Default: pretrained parts that install with the project** (:mod:`paramcast.models.pretrained`).

* vision ``"efficientnet-lite0"``: ImageNet EfficientNet-Lite0 cut at stride 16 (blocks 0–10,
  112 channels), so a 64 px frame gives a 4×4 grid of patch tokens, frozen ImageNet features
  computed once per clip and cached (:func:`paramcast.models.features.stem_tokens`); with
  ``tuned_blocks=k`` the last k of those blocks are fine-tuned by the cloud with the fusion module
  when it pretrains on its history, their BatchNorm statistics kept (default 0: on 2 CPU cores
  their convolution backward dominates pretraining); a ``Linear(112, C)`` projects the grid to C = 192. Stride 16 was measured against the alternatives:
  stride 32 (blocks 0–15) leaves a 2×2 grid at 64 px, too coarse for positions and motion; stride 8
  gives 64 weaker tokens per frame and 4× the fusion cost.
* text ``"minilm"``: the dataset's words are tokenized once with all-MiniLM-L6-v2's uncased WordPiece
  tokenizer (a table word id -> up to ``max_pieces`` pieces, built at construction and saved in the
  state dict), embedded by MiniLM's pretrained BERT embeddings (word + position + LayerNorm, frozen;
  All-in-One's "BERT embeddings only"; the rows are sliced to the pieces the vocabulary uses) and
  projected ``Linear(384, C)``.

The older from-scratch parts stay for users with real DeiT/BERT checkpoints
(:meth:`AllInOneEncoder.from_pretrained`) and for unit tests: vision ``"patch"`` (a ViT's P×P patch
embedding) and text ``"scratch"`` (BERT embeddings over the dataset's word ids, C wide).

Implementation choice (the seed leaves it open): ``fusion="joint"`` (default) fuses the question
with all T frames in one sequence ``[text ; CLS_1 ; patches_1 ; ... ; CLS_T ; patches_T]`` and
``F_m^i`` is the output at ``CLS_i``: every frame feature sees motion (direction, appearing and
disappearing sprites need two frames); pretraining then uses all T frames, the context the cached
features are computed in. ``fusion="per-frame"`` fuses each frame alone, ``[text ; CLS_i ;
patches_i]``, which keeps one frame's feature a function of that frame only (the older default;
on the quick preset it measured 20.0 % vs 24.9 % source-only accuracy, docs/cdc_mmpg.md).

The fusion layers are transformers' own ``ViTLayer`` blocks (transformers 5 names
``q_proj/k_proj/v_proj/o_proj``); nothing is downloaded.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, ViTConfig, ViTModel
from transformers.models.bert.modeling_bert import BertEmbeddings

from paramcast.models.heads import default_device

__all__ = ["ENCODER_VERSION", "TEXTS", "VISIONS", "AllInOneEncoder", "EncoderConfig", "default_device"]

#: Bumped whenever the architecture or its initialisation changes: part of the pretraining cache key.
ENCODER_VERSION = 3

VISIONS = ("efficientnet-lite0", "patch")
TEXTS = ("minilm", "scratch")
FUSIONS = ("joint", "per-frame")
_SPECIAL_PIECES = frozenset({"[PAD]", "[CLS]", "[SEP]", "[UNK]"})  # dataset specials = BERT's own tokens


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the encoder. The defaults are sized for the 2-core CPU benchmark (docs/cdc_mmpg.md)."""

    vocab_size: int = 1000        # question word vocabulary (len(Vocab.words)); set from the dataset
    image_size: int = 64          # H = W of an input frame (frames are resized if they differ)
    patch_size: int = 16          # vision "patch" only: ViT patch; 64/16 -> 16 patches per frame
    hidden: int = 192             # C: DeiT-tiny / All-in-One-Ti width; the uploaded feature is C-wide
    heads: int = 3                # attention heads (DeiT-tiny: 3)
    fusion_layers: int = 2        # t, transformer layers of the fusion module g(.)
    mlp_ratio: int = 2            # intermediate = mlp_ratio * hidden (DeiT uses 4; 2 halves CPU time)
    max_frames: int = 16          # size of the temporal position table
    max_question_len: int = 64    # size of the text position table ("scratch"; MiniLM has 512)
    dropout: float = 0.0          # dropout inside the fusion layers
    sampled_frames: int = 3       # D: frames sampled per clip when pretraining (All-in-One-Ti: 3)
    vision: str = "efficientnet-lite0"  # "efficientnet-lite0" (pretrained, ImageNet) or "patch" (from scratch)
    text: str = "minilm"          # "minilm" (pretrained WordPiece + embeddings) or "scratch"
    tuned_blocks: int = 0         # Lite0 blocks (of 0–10) the cloud fine-tunes (0: all frozen and cached; see docs)
    max_pieces: int = 4           # WordPiece pieces kept per dataset word ("minilm")
    text_vocab: int = 0           # rows of the sliced MiniLM embedding (set when the encoder is built)
    fusion: str = "joint"         # "joint": one sequence [text; frame 1; ...; frame T]; "per-frame": each frame alone

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r}: use one of {FUSIONS}")
        if self.vision not in VISIONS or self.text not in TEXTS:
            raise ValueError(f"vision={self.vision!r} / text={self.text!r}: use one of {VISIONS} / {TEXTS}")
        if self.vision == "patch" and self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        if not 0 <= self.tuned_blocks <= _LITE_CUT:
            raise ValueError(f"tuned_blocks={self.tuned_blocks}: use 0..{_LITE_CUT}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
        if self.fusion_layers < 1:
            raise ValueError(f"fusion_layers={self.fusion_layers}: use >= 1")
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size={self.vocab_size}: the word vocabulary needs at least the 4 specials")
        if self.sampled_frames < 1 or self.max_pieces < 1:
            raise ValueError("sampled_frames and max_pieces must be >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Stable hash of the config, used as part of cache keys."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def vit_config(self) -> ViTConfig:
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, hidden_size=self.hidden,
                         num_hidden_layers=self.fusion_layers, num_attention_heads=self.heads,
                         intermediate_size=self.mlp_ratio * self.hidden, hidden_dropout_prob=self.dropout,
                         attention_probs_dropout_prob=self.dropout, qkv_bias=True)

    def bert_config(self) -> BertConfig:
        return BertConfig(vocab_size=self.vocab_size, hidden_size=self.hidden, pad_token_id=0,
                          max_position_embeddings=self.max_question_len, type_vocab_size=2,
                          hidden_dropout_prob=self.dropout)


# DeiT normalises with ImageNet statistics ("patch"); Lite0 with (x - 127) / 128 (pretrained.LITE_*).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_LITE_CUT = 11  # Lite0 blocks 0..10: stride 16, 112 channels


def _additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) bool keep mask -> additive attention mask: 0 where kept, the dtype's minimum elsewhere."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill_(~keep, torch.finfo(dtype).min)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] != size or x.shape[-2] != size:
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class _LiteTokens(nn.Module):
    """EfficientNet-Lite0 to stride 16: ``stem`` (frozen blocks) and ``top`` (cloud-tuned blocks + projection)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        from paramcast.models.pretrained import lite0

        net = lite0(config.image_size)
        cache_at = _LITE_CUT - config.tuned_blocks
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.frozen = nn.ModuleList(net._blocks[:cache_at])
        self.tuned = nn.ModuleList(net._blocks[cache_at:_LITE_CUT])
        self.proj = nn.Linear(net._blocks[_LITE_CUT - 1]._block_args.output_filters, config.hidden)
        for m in (self.conv_stem, self.bn0, self.frozen):
            m.requires_grad_(False)
        # channels_last: the CPU convolution kernels run ~1.8x faster on it (same values); see stem().
        self.to(memory_format=torch.channels_last)
        self.size = config.image_size

    def train(self, mode: bool = True) -> _LiteTokens:
        """BatchNorm keeps its ImageNet statistics while the tuned blocks train (small batches)."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    @torch.no_grad()
    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> frozen ImageNet features (N, c, h, w): what the token cache holds."""
        from paramcast.models.pretrained import LITE_MEAN, LITE_STD

        x = _resize(frames.permute(0, 3, 1, 2).float(), self.size).sub_(LITE_MEAN).div_(LITE_STD)
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.act(self.bn0(self.conv_stem(x)))
        for block in self.frozen:
            x = block(x)
        return x

    def top(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c, h, w) stem features -> (N, P, C) patch tokens."""
        x = x.contiguous(memory_format=torch.channels_last)
        for block in self.tuned:
            x = block(x)
        return self.proj(x.flatten(2).transpose(1, 2))

    def grid(self) -> int:
        with torch.no_grad():
            return int(self.stem(torch.zeros(1, self.size, self.size, 3, dtype=torch.uint8)).shape[-1])


class _PatchTokens(nn.Module):
    """A ViT's P×P patch embedding (from scratch, or a DeiT's via ``from_pretrained``); nothing to cache."""

    def __init__(self, config: EncoderConfig, patch_embed: nn.Module):
        super().__init__()
        self.patch_embed = patch_embed
        self.size = config.image_size
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def stem(self, frames: torch.Tensor) -> torch.Tensor:
        x = _resize(frames.permute(0, 3, 1, 2).float().div_(255.0), self.size)
        return (x - self.pixel_mean) / self.pixel_std

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)

    def grid(self) -> int:
        return self.size // self.patch_embed.patch_size[0]


def _exporting() -> bool:
    """Inside ``torch.onnx.export`` (either exporter) or ``torch.export`` (ExecuTorch): take the static-shape path."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


class _WordPieceText(nn.Module):
    """Dataset word ids -> MiniLM WordPiece ids (table) -> MiniLM BERT embeddings (frozen) -> Linear(384, C)."""

    def __init__(self, config: EncoderConfig, words: list[str] | None):
        super().__init__()
        from paramcast.models.pretrained import minilm_embeddings, minilm_tokenizer

        full, bert_config = minilm_embeddings()
        width = full.word_embeddings.embedding_dim
        if words is not None:
            tok = minilm_tokenizer()
            pieces = []
            for w in words:
                ids = ([tok.convert_tokens_to_ids(w)] if w in _SPECIAL_PIECES
                       else tok(w, add_special_tokens=False)["input_ids"][: config.max_pieces])
                pieces.append(ids or [tok.unk_token_id])
            used = sorted({0, *(i for ids in pieces for i in ids)})          # 0 = [PAD] in BERT's vocabulary
            index = {p: k for k, p in enumerate(used)}
            table = torch.zeros(len(words), config.max_pieces, dtype=torch.int64)
            for r, ids in enumerate(pieces):
                table[r, : len(ids)] = torch.tensor([index[i] for i in ids])
            rows = torch.tensor(used)
        else:  # shapes only; load_state_dict fills them
            if config.text_vocab < 1:
                raise ValueError("text='minilm' needs words= (the dataset's word list) or a saved encoder")
            table = torch.zeros(config.vocab_size, config.max_pieces, dtype=torch.int64)
            rows = torch.zeros(config.text_vocab, dtype=torch.int64)
        bert_config = copy.deepcopy(bert_config)
        bert_config.vocab_size = int(rows.numel())
        bert_config.hidden_dropout_prob = config.dropout   # the fusion's dropout, not MiniLM's 0.1
        emb = BertEmbeddings(bert_config)
        state = full.state_dict()
        state["word_embeddings.weight"] = full.word_embeddings.weight.data[rows]
        emb.load_state_dict(state, strict=False)
        self.embeddings = emb.requires_grad_(False)
        self.register_buffer("table", table)
        self.proj = nn.Linear(width, config.hidden)
        self.text_vocab = int(rows.numel())

    def add_words(self, words: list[str], max_pieces: int) -> None:
        """Append ``words`` to the table (ids ``len(table), ...``) with their MiniLM pieces' embeddings;
        every existing row and weight stays as it is (see :meth:`AllInOneEncoder.with_words`)."""
        from paramcast.models.pretrained import minilm_embeddings, minilm_tokenizer

        tok = minilm_tokenizer()
        full, _ = minilm_embeddings()
        pieces = [tok(w, add_special_tokens=False)["input_ids"][:max_pieces] or [tok.unk_token_id] for w in words]
        rows = sorted({i for ids in pieces for i in ids})
        index = {p: self.text_vocab + k for k, p in enumerate(rows)}
        table = torch.zeros(len(words), self.table.shape[1], dtype=torch.int64)
        for r, ids in enumerate(pieces):
            table[r, : len(ids)] = torch.tensor([index[i] for i in ids])
        old = self.embeddings.word_embeddings.weight
        grown = torch.cat([old.data, full.word_embeddings.weight.data[rows].to(old)])
        self.embeddings.word_embeddings = nn.Embedding.from_pretrained(grown, freeze=True, padding_idx=0)
        self.table = torch.cat([self.table, table.to(self.table.device)])
        self.text_vocab += len(rows)

    def forward(self, question: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.table[question].flatten(1)                                           # (B, L·k)
        if _exporting():
            # Export: no data-dependent shapes. Pads stay in place (masked) and each piece gets its
            # rank among the row's pieces as position: the same result as the compaction below.
            keep = ids != 0
            pos = (keep.long().cumsum(1) - 1).clamp(min=0)
            return self.proj(self.embeddings(input_ids=ids, position_ids=pos)), keep
        ids = ids.gather(1, torch.sort((ids == 0).to(torch.int8), dim=1, stable=True).indices)  # pieces first
        n = max(1, int((ids != 0).sum(1).max())) if ids.numel() else 1
        ids = ids[:, : min(n, self.embeddings.position_embeddings.num_embeddings)]
        return self.proj(self.embeddings(input_ids=ids)), ids != 0


class _ScratchText(nn.Module):
    """BERT embeddings over the dataset's word ids, C wide (trained from scratch or a BERT's)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(config.bert_config())

    def forward(self, question: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embeddings(input_ids=question), question != 0


class AllInOneEncoder(nn.Module):
    """``forward(frames (B, T, H, W, 3) uint8, question (B, Lq) int64) -> F_m (B, T, C)``.

    ``forward = fuse(stem(frames))``: :meth:`stem` is the frozen part (cacheable per clip),
    :meth:`fuse` everything the cloud trains. ``words``: the dataset's word list (``Vocab.words``),
    needed to build the ``"minilm"`` text table (not when loading a saved encoder).
    """

    def __init__(self, config: EncoderConfig, words: list[str] | None = None):
        super().__init__()
        vit = ViTModel(config.vit_config(), add_pooling_layer=False)
        if config.vision == "efficientnet-lite0":
            self.vision = _LiteTokens(config)
            nn.init.trunc_normal_(vit.embeddings.cls_token, std=0.02)
        else:
            self.vision = _PatchTokens(config, vit.embeddings.patch_embeddings)
        grid = self.vision.grid()
        self.cls_token = vit.embeddings.cls_token                   # (1, 1, C) per-frame CLS
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1 + grid * grid, config.hidden))
        self.text = _WordPieceText(config, words) if config.text == "minilm" else _ScratchText(config)
        if config.text == "minilm" and config.text_vocab != self.text.text_vocab:
            config = dataclasses.replace(config, text_vocab=self.text.text_vocab)
        self.config = config
        self.temporal_pos = nn.Parameter(torch.zeros(1, config.max_frames, config.hidden))
        self.modality = nn.Embedding(2, config.hidden)              # 0 = text, 1 = video
        self.fusion = vit.layers                                    # g(.): t ViTLayer blocks
        self.norm = vit.layernorm
        # ViT-style small init: a unit-variance modality vector would swamp the patch content.
        for p in (self.spatial_pos, self.temporal_pos, self.modality.weight):
            nn.init.trunc_normal_(p, std=0.02)

    @property
    def hidden(self) -> int:
        return self.config.hidden

    @property
    def cacheable(self) -> bool:
        """True when :meth:`stem` is a frozen pretrained network worth caching (not raw pixels)."""
        return self.config.vision != "patch"

    def with_words(self, words: list[str]) -> AllInOneEncoder:
        """A copy that also embeds ``words``, as word ids ``vocab_size, vocab_size + 1, ...``.

        For texts the dataset's word list lacks, e.g. the multiple-choice candidates "yes", "never",
        "three", which no question or caption uses (``bench mcqa``). Their MiniLM pieces are looked
        up like every other word's; nothing is trained and every existing word keeps its id and
        embedding, so the copy encodes every old text exactly as this encoder does.
        """
        if self.config.text != "minilm":
            raise ValueError("with_words needs text='minilm': the scratch text embedding has no trained row for a "
                             "new word")
        new = copy.deepcopy(self)
        new.text.add_words(list(words), self.config.max_pieces)
        new.config = dataclasses.replace(self.config, vocab_size=self.config.vocab_size + len(words),
                                         text_vocab=new.text.text_vocab)
        return new

    def stem(self, frames: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> the frozen part's output (B, T, ...) float, on the model's device."""
        B, T = frames.shape[:2]
        dev = self.cls_token.device
        flat = frames.reshape(B * T, *frames.shape[2:])
        if _exporting():      # one call: no Python loop over a traced batch size
            x = self.vision.stem(flat)
        else:
            out = [self.vision.stem(flat[s: s + batch_size].to(dev)) for s in range(0, B * T, batch_size)]
            x = torch.cat(out) if out else self.vision.stem(flat.to(dev))
        return x.view(B, T, *x.shape[1:])

    def embed_text(self, question: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Lq) dataset word ids -> (text tokens (B, L', C) without the modality term, keep mask (B, L'))."""
        return self.text(question.to(self.cls_token.device))

    def forward(self, frames: torch.Tensor, question: torch.Tensor,
                frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame features from raw frames: ``fuse(stem(frames), question, frame_index)``."""
        return self.fuse(self.stem(frames), question, frame_index)

    def train_frames(self, T: int) -> int:
        """Frames per clip when training the fusion: D sampled ones per frame-wise fusion, all T jointly
        (so that training sees the context the cached features are computed in)."""
        return T if self.config.fusion == "joint" else min(self.config.sampled_frames, T)

    def fuse(self, stem: torch.Tensor, question: torch.Tensor,
             frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame multi-modal features from the frozen part's output.

        stem (B, T, ...) from :meth:`stem` (or the token cache), question (B, Lq) int64 (0 = pad),
        frame_index (T,) int64: the frames' positions in the clip (for the temporal embedding;
        default 0..T-1).
        """
        B, T = stem.shape[:2]
        dev = self.cls_token.device
        stem = stem.to(dev, torch.float32)
        if frame_index is None:
            frame_index = torch.arange(T, device=dev)
        # Video tokens: patches + spatial pos + temporal pos + modality (eq. 3's embedding step).
        patches = self.vision.top(stem.reshape(B * T, *stem.shape[2:]))              # (BT, P, C)
        cls = self.cls_token.expand(B * T, -1, -1)                                  # (BT, 1, C)
        vid = torch.cat([cls, patches], dim=1) + self.spatial_pos                   # (BT, 1+P, C)
        tpos = self.temporal_pos[:, frame_index.to(dev)].reshape(1, T, 1, -1)       # (1, T, 1, C)
        vid = vid.view(B, T, -1, self.hidden) + tpos + self.modality.weight[1]       # (B, T, 1+P, C)
        # Text tokens: word (+ position + LayerNorm) embeddings + modality.
        txt, keep_txt = self.embed_text(question)
        txt = txt + self.modality.weight[0]                                          # (B, Lq, C)
        Lq = txt.shape[1]
        if self.config.fusion == "joint":
            # one sequence per clip: [text ; CLS_1 ; patches_1 ; ... ; CLS_T ; patches_T]
            P1 = vid.shape[2]
            seq = torch.cat([txt, vid.reshape(B, T * P1, self.hidden)], dim=1)
            keep = torch.cat([keep_txt, keep_txt.new_ones(B, T * P1)], dim=1)
            mask = _additive_mask(keep, seq.dtype)
            for layer in self.fusion:
                seq = layer(seq, attention_mask=mask[:, None, None, :])
            return self.norm(seq)[:, Lq::P1]                                        # F_m: CLS_i, (B, T, C)
        txt = txt.unsqueeze(1).expand(B, T, Lq, self.hidden)                        # (B, T, Lq, C)
        seq = torch.cat([txt, vid], dim=2).reshape(B * T, Lq + vid.shape[2], self.hidden)
        # Additive mask hiding question padding from every token.
        keep = torch.cat([keep_txt, keep_txt.new_ones(B, vid.shape[2])], dim=1)
        mask = _additive_mask(keep, seq.dtype).repeat_interleave(T, dim=0)[:, None, None, :]                   # (BT, 1, 1, L)
        for layer in self.fusion:
            seq = layer(seq, attention_mask=mask)
        seq = self.norm(seq)
        return seq[:, Lq].view(B, T, self.hidden)                                   # F_m: CLS_i, (B, T, C)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """``model.safetensors`` + ``config.json`` (no pickle)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> AllInOneEncoder:
        """Load what :meth:`save` wrote."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config = EncoderConfig(**json.loads((directory / "config.json").read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.to(device or default_device())

    @classmethod
    def from_pretrained(cls, vision_dir: str | Path, text_dir: str | Path | None = None,
                        config: EncoderConfig | None = None, device: str | None = None) -> AllInOneEncoder:
        """Initialise from local transformers checkpoints: a DeiT/ViT directory and a BERT directory.

        The alternative to the default pretrained parts (Lite0 + MiniLM) for users who have real
        DeiT-tiny / BERT directories (the seeds' All-in-One-Ti): vision ``"patch"``, text ``"scratch"``
        with that BERT's vocabulary (question ids must then be that BERT's ids).

        Only local directories are read (``local_files_only``); the first ``fusion_layers`` ViT
        blocks become the fusion module, the ViT patch/position/CLS embeddings the video embedding,
        and BERT's embeddings the text embedding (All-in-One uses BERT's embeddings only).
        """
        from transformers import BertModel

        vit = ViTModel.from_pretrained(str(vision_dir), local_files_only=True, add_pooling_layer=False)
        vc = vit.config
        base = config or EncoderConfig()
        bert = BertModel.from_pretrained(str(text_dir), local_files_only=True) if text_dir else None
        config = dataclasses.replace(
            base, vision="patch", text="scratch", image_size=vc.image_size, patch_size=vc.patch_size, hidden=vc.hidden_size,
            heads=vc.num_attention_heads, mlp_ratio=vc.intermediate_size // vc.hidden_size,
            fusion_layers=min(base.fusion_layers, vc.num_hidden_layers),
            vocab_size=bert.config.vocab_size if bert is not None else base.vocab_size,
            max_question_len=bert.config.max_position_embeddings if bert is not None else base.max_question_len)
        model = cls(config)
        model.vision.patch_embed.load_state_dict(vit.embeddings.patch_embeddings.state_dict())
        model.cls_token.data.copy_(vit.embeddings.cls_token.data)
        model.spatial_pos.data.copy_(vit.embeddings.position_embeddings.data)
        for mine, theirs in zip(model.fusion, vit.layers, strict=False):
            mine.load_state_dict(theirs.state_dict())
        model.norm.load_state_dict(vit.layernorm.state_dict())
        if bert is not None:
            if bert.config.hidden_size != config.hidden:
                raise ValueError(f"BERT hidden {bert.config.hidden_size} != ViT hidden {config.hidden}: "
                                 "use checkpoints of the same width (All-in-One-Ti: 192)")
            model.text.embeddings.load_state_dict(bert.embeddings.state_dict(), strict=False)
        return model.to(device or default_device())
