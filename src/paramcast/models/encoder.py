"""All-in-One-style multi-modal encoder: the frozen feature extractor shared by cloud and device.

CDC-MMPG eq. 1–4 (seed ``cdc-mmpg.txt``, §3.1): DeiT patch embeddings for frames (F_v, eq. 1), BERT
word embeddings only for the question (F_l, eq. 2), spatial-temporal position embeddings and
modality-type embeddings, then a fusion transformer g(·) of ``fusion_layers`` layers (eq. 4) that
gives one multi-modal feature per frame, ``F_m = {F_m^i}`` of shape (B, T, C).

Implementation choice (documented because the seed leaves it open): each frame is fused with the
question on its own, ``[text ; CLS_i ; patches_i]``, and ``F_m^i`` is the output at ``CLS_i``. This
keeps one frame's feature a function of that frame and the question only, which is what makes the
AnchorFrame Distribution Reasoner meaningful (one frame feature stands in for the mean of D frames),
makes pretraining on D sampled frames and caching all T frames produce the same features, and
keeps the sequence short (Lq + 1 + P tokens) so the encoder runs on 2 CPU cores.

The layers are transformers' own ``ViTModel`` (patch embedding + ``ViTLayer`` blocks, transformers 5
names: ``q_proj/k_proj/v_proj/o_proj``) and ``BertEmbeddings``, so :meth:`AllInOneEncoder.from_pretrained`
can load a local DeiT/ViT and BERT checkpoint directory; nothing is downloaded.
"""

from __future__ import annotations

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

__all__ = ["ENCODER_VERSION", "AllInOneEncoder", "EncoderConfig", "default_device"]

#: Bumped whenever the architecture or its initialisation changes: part of the pretraining cache key.
ENCODER_VERSION = 2


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the encoder. The defaults are sized for the 2-core CPU benchmark (DESIGN.md)."""

    vocab_size: int = 1000        # question word vocabulary (len(Vocab.words)); set from the dataset
    image_size: int = 64          # H = W of an input frame (frames are resized if they differ)
    patch_size: int = 16          # ViT patch; 64/16 -> 16 patches per frame
    hidden: int = 192             # C: DeiT-tiny / All-in-One-Ti width; the uploaded feature is C-wide
    heads: int = 3                # attention heads (DeiT-tiny: 3)
    fusion_layers: int = 2        # t, transformer layers of the fusion module g(.)
    mlp_ratio: int = 2            # intermediate = mlp_ratio * hidden (DeiT uses 4; 2 halves CPU time)
    max_frames: int = 16          # size of the temporal position table
    max_question_len: int = 64    # size of BERT's position table
    dropout: float = 0.0          # dropout inside the fusion layers
    sampled_frames: int = 3       # D: frames sampled per clip when pretraining (All-in-One-Ti: 3)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
        if self.fusion_layers < 1:
            raise ValueError(f"fusion_layers={self.fusion_layers}: use >= 1")
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size={self.vocab_size}: the word vocabulary needs at least the 4 specials")
        if self.sampled_frames < 1:
            raise ValueError(f"sampled_frames={self.sampled_frames}: use >= 1")

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


# Frames arrive as uint8 RGB; DeiT normalises with ImageNet statistics.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class AllInOneEncoder(nn.Module):
    """``forward(frames (B, T, H, W, 3) uint8, question (B, Lq) int64) -> F_m (B, T, C)``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        vit = ViTModel(config.vit_config(), add_pooling_layer=False)
        self.patch_embed = vit.embeddings.patch_embeddings          # conv P x P -> C
        self.cls_token = vit.embeddings.cls_token                   # (1, 1, C) per-frame CLS
        self.spatial_pos = vit.embeddings.position_embeddings       # (1, 1 + P, C)
        self.temporal_pos = nn.Parameter(torch.zeros(1, config.max_frames, config.hidden))
        self.text = BertEmbeddings(config.bert_config())            # word + position + LN (BERT's own)
        self.modality = nn.Embedding(2, config.hidden)              # 0 = text, 1 = video
        self.fusion = vit.layers                                    # g(.): t ViTLayer blocks
        self.norm = vit.layernorm
        # ViT-style small init: a unit-variance modality vector would swamp the patch content.
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        nn.init.trunc_normal_(self.modality.weight, std=0.02)
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def hidden(self) -> int:
        return self.config.hidden

    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, S, S) normalised float."""
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.config.image_size or x.shape[-2] != self.config.image_size:
            x = nn.functional.interpolate(x, size=(self.config.image_size,) * 2, mode="bilinear",
                                          align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, frames: torch.Tensor, question: torch.Tensor,
                frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame multi-modal features.

        frames (B, T, H, W, 3) uint8, question (B, Lq) int64 (0 = pad), frame_index (T,) int64: the
        frames' positions in the clip (for the temporal embedding; default 0..T-1).
        """
        B, T = frames.shape[:2]
        dev = self.cls_token.device
        # Drop all-pad question columns: masked anyway, and the text is repeated for every frame.
        last = ((question != 0) * torch.arange(1, question.shape[1] + 1, device=question.device)).amax()
        keep_len = max(1, int(last)) if question.numel() else 1
        frames, question = frames.to(dev), question[:, :keep_len].to(dev)
        if frame_index is None:
            frame_index = torch.arange(T, device=dev)
        # Video tokens: patches + spatial pos + temporal pos + modality (eq. 3's embedding step).
        pix = self._pixels(frames.reshape(B * T, *frames.shape[2:]))              # (BT, 3, S, S)
        patches = self.patch_embed(pix)                                             # (BT, P, C)
        cls = self.cls_token.expand(B * T, -1, -1)                                  # (BT, 1, C)
        vid = torch.cat([cls, patches], dim=1) + self.spatial_pos                   # (BT, 1+P, C)
        tpos = self.temporal_pos[:, frame_index].reshape(1, T, 1, -1)               # (1, T, 1, C)
        vid = vid.view(B, T, -1, self.hidden) + tpos + self.modality.weight[1]       # (B, T, 1+P, C)
        # Text tokens: BERT word + position embeddings (+ its LayerNorm) + modality.
        txt = self.text(input_ids=question) + self.modality.weight[0]               # (B, Lq, C)
        Lq = txt.shape[1]
        txt = txt.unsqueeze(1).expand(B, T, Lq, self.hidden)                        # (B, T, Lq, C)
        seq = torch.cat([txt, vid], dim=2).reshape(B * T, Lq + vid.shape[2], self.hidden)
        # Additive mask hiding question padding from every token.
        keep = torch.cat([question != 0, question.new_ones(B, vid.shape[2], dtype=torch.bool)], dim=1)
        mask = torch.zeros(keep.shape, dtype=seq.dtype, device=dev).masked_fill_(~keep, torch.finfo(seq.dtype).min)
        mask = mask.repeat_interleave(T, dim=0)[:, None, None, :]                   # (BT, 1, 1, L)
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
            base, image_size=vc.image_size, patch_size=vc.patch_size, hidden=vc.hidden_size,
            heads=vc.num_attention_heads, mlp_ratio=vc.intermediate_size // vc.hidden_size,
            fusion_layers=min(base.fusion_layers, vc.num_hidden_layers),
            vocab_size=bert.config.vocab_size if bert is not None else base.vocab_size,
            max_question_len=bert.config.max_position_embeddings if bert is not None else base.max_question_len)
        model = cls(config)
        model.patch_embed.load_state_dict(vit.embeddings.patch_embeddings.state_dict())
        model.cls_token.data.copy_(vit.embeddings.cls_token.data)
        model.spatial_pos.data.copy_(vit.embeddings.position_embeddings.data)
        for mine, theirs in zip(model.fusion, vit.layers, strict=False):
            mine.load_state_dict(theirs.state_dict())
        model.norm.load_state_dict(vit.layernorm.state_dict())
        if bert is not None:
            if bert.config.hidden_size != config.hidden:
                raise ValueError(f"BERT hidden {bert.config.hidden_size} != ViT hidden {config.hidden}: "
                                 "use checkpoints of the same width (All-in-One-Ti: 192)")
            model.text.load_state_dict(bert.embeddings.state_dict(), strict=False)
        return model.to(device or default_device())
