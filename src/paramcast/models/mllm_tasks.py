"""Image VQA (direct answer, multiple choice) and captioning on top of :class:`~paramcast.models.mllm.MLLM`.

A clip of EmojiClips becomes an image by taking its middle frame. The LM reads
``[queries ; [CLS] question [SEP]]`` and answers with the next token, one of the answer tokens
(DA = argmax over all answer tokens, MC = argmax over the 5 candidate answer tokens); captioning reads
``[queries ; [CAP] w1 .. wn]`` and is trained to emit ``w1 .. wn [SEP]``, greedily decoded at test.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from paramcast.data.base import ClipSet
from paramcast.models.mllm import CLS, MLLM, PAD, SEP, UNK, MLLMOutput, TokenLayout, VisionEncoder

__all__ = ["MLLMBatch", "answer_logits", "batch_from_frames", "caption_io", "caption_loss", "encode_batches", "evaluate",
           "greedy_caption", "make_batch", "mc_logits", "vqa_io", "vqa_loss"]


@dataclass
class MLLMBatch:
    """Rows of a ClipSet as the MLLMs see them; ``image`` are the shared encoder's tokens."""

    frames: torch.Tensor      # (B, H, W, 3) uint8, the middle frame of each clip
    image: torch.Tensor       # (B, S, C) image tokens from the frozen shared encoder (eval mode)
    question: torch.Tensor    # (B, Lq) word ids, [CLS] first, 0 = pad
    caption: torch.Tensor     # (B, Lc) word ids, [CLS] first, 0 = pad
    answer: torch.Tensor      # (B,) answer class, -1 outside the vocabulary
    candidates: torch.Tensor  # (B, 5) answer classes
    mc_label: torch.Tensor    # (B,)
    category: torch.Tensor    # (B,)

    def __len__(self) -> int:
        return int(self.answer.shape[0])

    def index(self, idx: torch.Tensor) -> MLLMBatch:
        return MLLMBatch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def chunks(self, size: int):
        for i in range(0, len(self), size):
            yield self.index(torch.arange(i, min(i + size, len(self))))


    def subset(self, idx: torch.Tensor) -> MLLMBatch:  # the name FeatureSet uses
        return self.index(idx)


@torch.no_grad()
def batch_from_frames(encoder: VisionEncoder, frames: torch.Tensor, chunk: int = 256, **fields: torch.Tensor
                      ) -> MLLMBatch:
    """One frame per row (N, H, W, 3) uint8 through the frozen encoder (eval mode: no dropout), with the
    rows' other fields (``question`` ...; absent ones are empty or -1); every field on the encoder's device."""
    was = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    frames = frames.contiguous().to(dev)
    image = torch.cat([encoder(frames[i:i + chunk]) for i in range(0, len(frames), chunk)]) if len(frames) else \
        torch.zeros(0, 0, 0, device=dev)
    encoder.train(was)
    n = len(frames)
    default = {"caption": torch.zeros(n, 1, dtype=torch.long), "answer": torch.full((n,), -1),
               "candidates": torch.full((n, 5), -1), "mc_label": torch.zeros(n, dtype=torch.long),
               "category": torch.zeros(n, dtype=torch.long)}
    rest = {k: fields.get(k, default.get(k)) for k in ("question", "caption", "answer", "candidates", "mc_label",
                                                         "category")}
    return MLLMBatch(frames, image, **{k: v.to(dev) for k, v in rest.items()})


def make_batch(encoder: VisionEncoder, clips: ClipSet, chunk: int = 256) -> MLLMBatch:
    """Middle frame of each clip through the frozen encoder (:func:`batch_from_frames`)."""
    return batch_from_frames(encoder, clips.frames[:, clips.frames.shape[1] // 2], chunk, question=clips.question,
                             caption=clips.caption, answer=clips.answer, candidates=clips.candidates,
                             mc_label=clips.mc_label, category=clips.category)


def encode_batches(encoder: VisionEncoder, sets: dict[str, ClipSet]) -> dict[str, MLLMBatch]:
    return {k: make_batch(encoder, v) for k, v in sets.items()}


def vqa_io(question: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """question (B, Lq) -> text (B, Lq + 1) with [SEP] after the last word, and the [SEP] index (B,)."""
    n = (question != PAD).sum(1)                                   # (B,)
    text = torch.cat([question, torch.zeros_like(question[:, :1])], 1)
    text[torch.arange(len(n), device=n.device), n] = SEP
    return text, n


def caption_io(caption: torch.Tensor, layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """caption (B, Lc) ([CLS] w.. [SEP]? pad..) -> LM input ([CAP] w..) and target (w.. [SEP], -100 pad)."""
    words = caption[:, 1:] if caption.shape[1] and bool((caption[:, 0] == CLS).all()) else caption
    words = torch.where(words == SEP, torch.zeros_like(words), words)
    n = (words != PAD).sum(1)
    B, L = words.shape
    dev = words.device
    inp = torch.cat([torch.full((B, 1), layout.cap, dtype=words.dtype, device=dev), words], 1)  # (B, L + 1)
    target = torch.cat([words, torch.zeros_like(words[:, :1])], 1)
    target[torch.arange(B, device=dev), n] = SEP
    target = torch.where(torch.arange(L + 1, device=dev)[None] <= n[:, None], target, torch.full_like(target, -100))
    return inp, target


def answer_logits(model: MLLM, image, image_mask, question) -> tuple[torch.Tensor, MLLMOutput]:
    """(B, A) logits over the answer tokens at the [SEP] position, and the full output."""
    text, pos = vqa_io(question)
    out = model(image, image_mask, text)
    a0, A = model.layout.answer0, model.layout.n_answers
    return out.logits[torch.arange(len(pos), device=pos.device), pos, a0:a0 + A], out


def mc_logits(ans_logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, A), (B, 5) -> (B, 5); a candidate outside the answer vocabulary (-1) scores -inf."""
    got = ans_logits.gather(1, candidates.clamp(min=0))
    return got.masked_fill(candidates < 0, float("-inf"))


def vqa_loss(model: MLLM, image, image_mask, question, target: torch.Tensor) -> tuple[torch.Tensor, MLLMOutput]:
    """CE of the answer token; ``target`` (B,) classes (-1 ignored) or (B, A) soft labels."""
    logits, out = answer_logits(model, image, image_mask, question)
    if target.dim() == 2:
        return -(target * logits.log_softmax(-1)).sum(-1).mean(), out
    return F.cross_entropy(logits, target, ignore_index=-1), out


def caption_loss(model: MLLM, image, image_mask, caption) -> tuple[torch.Tensor, MLLMOutput]:
    inp, target = caption_io(caption, model.layout)
    out = model(image, image_mask, inp)
    return F.cross_entropy(out.logits.flatten(0, 1), target.flatten(), ignore_index=-100), out


@torch.no_grad()
def greedy_caption(model: MLLM, image, image_mask, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decode over word tokens -> caption ids (B, 1 + max_len) in ClipSet form ([CLS] w.. pad)
    and the mean per-step predictive entropy (B,) (eq. 2 over the generated tokens)."""
    B = image.shape[0]
    lay = model.layout
    dev = image.device
    seq = torch.full((B, 1), lay.cap, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    ent_sum, steps = torch.zeros(B, device=dev), torch.zeros(B, device=dev)
    allowed = torch.full((lay.vocab_size,), float("-inf"), device=dev)
    allowed[SEP] = 0.0
    allowed[4:lay.n_words] = 0.0  # words only: no [PAD]/[CLS]/[UNK], no answer tokens, no [CAP]
    for _ in range(max_len):
        logits = model(image, image_mask, seq).logits[:, -1] + allowed           # (B, V)
        logp = logits.log_softmax(-1)
        ent = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)
        ent_sum += torch.where(done, 0.0, ent)
        steps += (~done).float()
        nxt = logits.argmax(-1).masked_fill(done, PAD)
        done |= nxt == SEP
        seq = torch.cat([seq, nxt[:, None]], 1)
        if bool(done.all()):
            break
    words = seq[:, 1:].masked_fill(seq[:, 1:] == SEP, PAD)
    words = F.pad(words, (0, max_len - words.shape[1]), value=PAD)
    return torch.cat([torch.full((B, 1), CLS, dtype=torch.long, device=dev), words], 1), ent_sum / steps.clamp(min=1)


def _caption_tokens(ids: torch.Tensor, words: list[str]) -> list[str]:
    return [" ".join(words[i] for i in row.tolist() if UNK < i < len(words)) for row in ids]


@torch.no_grad()
def evaluate(model: MLLM, batch: MLLMBatch, words: list[str], max_caption: int, chunk: int = 128) -> dict:
    """DA and MC accuracy (%), each row's correctness (``DA_ok``, ``MC_ok``: (N,) bool) and the
    decoded/reference caption strings of ``batch``."""
    model.eval()
    da, mc, hyps, refs = [], [], [], []
    for b in batch.chunks(chunk):
        logits, _ = answer_logits(model, b.image, None, b.question)
        da.append((logits.argmax(-1) == b.answer).cpu())
        mc.append((mc_logits(logits, b.candidates).argmax(-1) == b.mc_label).cpu())
        ids, _ = greedy_caption(model, b.image, None, max_caption)
        hyps += _caption_tokens(ids, words)
        refs += _caption_tokens(b.caption, words)
    da_ok = torch.cat(da) if da else torch.zeros(0, dtype=torch.bool)
    mc_ok = torch.cat(mc) if mc else torch.zeros(0, dtype=torch.bool)
    n = max(len(batch), 1)
    return {"DA": 100.0 * int(da_ok.sum()) / n, "MC": 100.0 * int(mc_ok.sum()) / n, "DA_ok": da_ok, "MC_ok": mc_ok,
            "hyps": hyps, "refs": refs}
