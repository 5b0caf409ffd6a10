"""A small random video-QA set with device structure, so method tests never depend on a dataset build."""

from __future__ import annotations

import pytest
import torch

from paramcast.data.base import IGNORE, ClipSet, Vocab
from paramcast.models.encoder import AllInOneEncoder, EncoderConfig
from paramcast.models.features import FeatureSet


def make_clipset(n: int = 48, devices: int = 4, T: int = 4, size: int = 16, lq: int = 6, vocab: int = 20,
                 answers: int = 7, seed: int = 0) -> tuple[ClipSet, Vocab]:
    g = torch.Generator().manual_seed(seed)
    answer = torch.randint(answers, (n,), generator=g)
    answer[::11] = IGNORE
    question = torch.randint(4, vocab, (n, lq), generator=g)
    question[:, 0] = 1
    question[:, -2:] = 0
    clips = ClipSet(
        frames=torch.randint(0, 256, (n, T, size, size, 3), generator=g, dtype=torch.uint8),
        question=question, answer=answer, answer_text=[f"a{int(a)}" for a in answer],
        candidates=torch.zeros(n, 5, dtype=torch.long), mc_label=torch.zeros(n, dtype=torch.long),
        caption=torch.zeros(n, 4, dtype=torch.long), device=torch.arange(n) % devices,
        category=torch.zeros(n, dtype=torch.long), qtype=torch.zeros(n, dtype=torch.long),
        clip_id=torch.arange(n))
    voc = Vocab(words=["[PAD]", "[CLS]", "[SEP]", "[UNK]"] + [f"w{i}" for i in range(vocab - 4)],
                answers=[f"a{i}" for i in range(answers)], devices=[f"d{i}" for i in range(devices)],
                categories=["c"], qtypes=["q"])
    return clips, voc


def make_features(n: int = 48, devices: int = 4, T: int = 4, C: int = 16, answers: int = 7, seed: int = 0,
                  raw: ClipSet | None = None) -> FeatureSet:
    """Features with a device-dependent shift and an answer-dependent direction (learnable, personalisable)."""
    g = torch.Generator().manual_seed(seed)
    device = torch.arange(n) % devices
    answer = torch.randint(answers, (n,), generator=g)
    answer[::11] = IGNORE
    dev_shift = torch.randn(devices, C, generator=g)
    ans_dir = torch.randn(answers, C, generator=g)
    feats = (dev_shift[device][:, None] + ans_dir[answer.clamp(min=0)][:, None]
             + 0.3 * torch.randn(n, T, C, generator=g))
    return FeatureSet(feats, answer, device, None if raw is None else raw.frames,
                      None if raw is None else raw.question)


@pytest.fixture
def tiny_features() -> FeatureSet:
    return make_features()


@pytest.fixture
def tiny_encoder_and_data():
    clips, voc = make_clipset()
    enc = AllInOneEncoder(EncoderConfig(vision="patch", text="scratch", vocab_size=len(voc.words), image_size=16, patch_size=8, hidden=16,
                                        heads=2, fusion_layers=1, max_frames=8, max_question_len=16)).to("cpu")
    enc.requires_grad_(False).eval()
    from paramcast.models.features import feature_set

    fs = feature_set(enc, clips)
    fs.answer = clips.answer
    return enc, fs, voc
