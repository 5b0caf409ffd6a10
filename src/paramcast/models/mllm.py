"""The tiny teacher / student MLLMs of CD-CCA (and of the TENT / CoTTA / PKD / CWD baselines of its
tables): vision encoder -> query transformer -> causal LM.

Seed (cd-cca.txt, sec. 4.1): LLaMA-Adapter on LLaMA2-13B (cloud teacher) and -7B (student = device
model), with the student's Q-Former cut from 12 to 6 layers. Here, at toy scale and built from
``transformers`` config objects only (nothing downloaded):

* :class:`VisionEncoder`  a ViT (64x64 input, 8x8 patches -> 64 patch tokens + [CLS]). As in
  BLIP-2 / LLaMA-Adapter the image encoder is *frozen and shared* by teacher and student; this is
  what makes UTS meaningful: the device uploads image tokens that both cloud models read.
* :class:`QFormer`        learnable query tokens; each layer: queries self-attend, cross-attend to the
  image tokens (a key-padding mask hides tokens UTS dropped), MLP. Teacher 4 layers, student 2.
* a LLaMA-architecture ``LlamaModel`` reading ``[projected queries ; text tokens]``.

One LM vocabulary serves both tasks: ``Vocab.words`` (caption/question words), then one token per
answer class (so direct-answer VQA is a single next-token classification over the answer tokens and
multiple choice scores the 5 candidate answer tokens), then a ``[CAP]`` prompt token for captioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaModel, ViTConfig, ViTModel

__all__ = ["MLLM", "MLLMConfig", "QFormer", "TokenLayout", "VisionEncoder", "student_config", "teacher_config"]

PAD, CLS, SEP, UNK = 0, 1, 2, 3  # data.base.Vocab.words


@dataclass(frozen=True)
class TokenLayout:
    """Where words, answer classes and the caption prompt live in the LM vocabulary."""

    n_words: int    # len(Vocab.words)
    n_answers: int  # len(Vocab.answers)

    @property
    def answer0(self) -> int:  # token id of answer class 0
        return self.n_words

    @property
    def cap(self) -> int:      # the captioning prompt token
        return self.n_words + self.n_answers

    @property
    def vocab_size(self) -> int:
        return self.n_words + self.n_answers + 1


@dataclass(frozen=True)
class MLLMConfig:
    image_size: int = 64        # frames are 64x64
    patch: int = 8              # -> 64 patch tokens + [CLS]
    vit_hidden: int = 64        # C of the uploaded image tokens
    vit_layers: int = 2
    vit_dropout: float = 0.1    # the dropout UTS's MC passes switch on (eq. 3)
    num_queries: int = 8        # L, learnable query tokens
    q_hidden: int = 64          # query transformer width
    q_layers: int = 4           # teacher 4, student 2 (seed: 12 -> 6)
    lm_hidden: int = 96
    lm_layers: int = 2
    lm_heads: int = 4
    max_text: int = 48          # longest text part of an LM input (question + [SEP] or [CAP] + caption)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.image_size % self.patch:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch={self.patch}")
        if self.q_hidden % 4 or self.lm_hidden % self.lm_heads:
            raise ValueError("q_hidden must be a multiple of 4 and lm_hidden of lm_heads (attention heads)")

    @property
    def n_image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2 + 1


def teacher_config(**kw) -> MLLMConfig:
    """The cloud teacher: 4 query layers, a wider and deeper LM."""
    return MLLMConfig(**{"q_layers": 4, "lm_hidden": 128, "lm_layers": 3, **kw})


def student_config(**kw) -> MLLMConfig:
    """The device student: half the teacher's query layers (seed: 12 -> 6), a smaller LM."""
    return MLLMConfig(**{"q_layers": 2, "lm_hidden": 64, "lm_layers": 2, **kw})


class VisionEncoder(nn.Module):
    """ViT over one frame: uint8 (B, H, W, 3) -> image tokens (B, 1 + P, C)."""

    def __init__(self, cfg: MLLMConfig):
        super().__init__()
        self.vit = ViTModel(
            ViTConfig(image_size=cfg.image_size, patch_size=cfg.patch, num_channels=3,
                      hidden_size=cfg.vit_hidden, num_hidden_layers=cfg.vit_layers, num_attention_heads=4,
                      intermediate_size=2 * cfg.vit_hidden, hidden_dropout_prob=cfg.vit_dropout,
                      attention_probs_dropout_prob=0.0),
            add_pooling_layer=False,
        )

    @staticmethod
    def pixels(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
        return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames if frames.is_floating_point() and frames.shape[1] == 3 else self.pixels(frames)
        return self.vit(pixel_values=x).last_hidden_state  # (B, 1 + P, C)


class _Attention(nn.Module):
    """Multi-head attention with separate q/k/v/o linears (LoRA targets them by name)."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(kv_dim, dim)
        self.v_proj, self.o_proj = nn.Linear(kv_dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, C = x.shape
        h = self.heads

        def split(t):  # (B, S, C) -> (B, h, S, C/h)
            return t.view(B, t.shape[1], h, C // h).transpose(1, 2)

        mask = None if kv_mask is None else kv_mask[:, None, None, :]  # (B, 1, 1, S) True = attend
        out = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(kv)), split(self.v_proj(kv)),
                                             attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.o_proj(out.transpose(1, 2).reshape(B, L, C))


class QFormerLayer(nn.Module):
    def __init__(self, dim: int, kv_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), _Attention(dim, dim, 4, dropout)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), _Attention(dim, kv_dim, 4, dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, q, image, image_mask):
        h = self.norm1(q)
        q = q + self.drop(self.self_attn(h, h))
        cross = self.cross_attn(self.norm2(q), image, image_mask)  # the "attention-mediated" part
        q = q + self.drop(cross)
        return q + self.drop(self.mlp(self.norm3(q)))


class QFormer(nn.Module):
    """Learnable queries (1, L, C) that read the image tokens: (B, S, C_img) -> (B, L, C)."""

    def __init__(self, cfg: MLLMConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.q_hidden) * 0.02)
        self.layers = nn.ModuleList(QFormerLayer(cfg.q_hidden, cfg.vit_hidden, cfg.dropout) for _ in range(cfg.q_layers))
        self.norm = nn.LayerNorm(cfg.q_hidden)

    def forward(self, image: torch.Tensor, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query_tokens.expand(image.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, image, image_mask)
        return self.norm(q)  # (B, L, C)


@dataclass
class MLLMOutput:
    logits: torch.Tensor   # (B, T, V) over the text positions only
    queries: torch.Tensor  # (B, L, C_q)   Q of eq. 5
    hidden: torch.Tensor   # (B, T, H_lm)  LM output over the text positions (L_repr)


class MLLM(nn.Module):
    """Query transformer + LLaMA LM over precomputed image tokens (the encoder is shared and frozen)."""

    def __init__(self, cfg: MLLMConfig, layout: TokenLayout):
        super().__init__()
        self.cfg, self.layout = cfg, layout
        self.qformer = QFormer(cfg)
        self.proj = nn.Linear(cfg.q_hidden, cfg.lm_hidden)
        self.lm = LlamaModel(LlamaConfig(
            vocab_size=layout.vocab_size, hidden_size=cfg.lm_hidden, intermediate_size=2 * cfg.lm_hidden,
            num_hidden_layers=cfg.lm_layers, num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
            max_position_embeddings=cfg.num_queries + cfg.max_text + 8, pad_token_id=PAD,
            bos_token_id=CLS, eos_token_id=SEP, tie_word_embeddings=False))
        self.lm_head = nn.Linear(cfg.lm_hidden, layout.vocab_size, bias=False)

    def forward(self, image: torch.Tensor, image_mask: torch.Tensor | None, text: torch.Tensor) -> MLLMOutput:
        """image (B, S, C_img), image_mask (B, S) bool or None, text (B, T) token ids (right padded)."""
        queries = self.qformer(image, image_mask)                              # (B, L, Cq)
        emb = torch.cat([self.proj(queries), self.lm.embed_tokens(text)], 1)   # (B, L + T, H)
        attn = torch.cat([torch.ones_like(text[:, :1]).expand(-1, queries.shape[1]), (text != PAD).long()], 1)
        hidden = self.lm(inputs_embeds=emb, attention_mask=attn).last_hidden_state[:, queries.shape[1]:]
        return MLLMOutput(self.lm_head(hidden), queries, hidden)
