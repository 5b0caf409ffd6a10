"""One tiny pretrained CD-CCA system per session (encoder, teacher, student on synthetic clips)."""

from __future__ import annotations

import pytest
import torch

from paramcast.methods.cd_cca import CDCCAConfig, PretrainConfig, UTSConfig, pretrain
from paramcast.methods.cd_cca.akd import AKDConfig
from paramcast.models.mllm import student_config, teacher_config
from paramcast.models.mllm_tasks import make_batch

from .synth import synth_clips, synth_vocab

TINY = {"image_size": 32, "vit_hidden": 32, "vit_layers": 1, "num_queries": 4, "q_hidden": 32}


def tiny_pretrain_config(**kw) -> PretrainConfig:
    return PretrainConfig(teacher=teacher_config(**TINY, lm_hidden=48, lm_layers=2),
                          student=student_config(**TINY, lm_hidden=32, lm_layers=1),
                          teacher_epochs=1, student_epochs=1, batch_size=8, **kw)


def small_config(**akd) -> CDCCAConfig:
    return CDCCAConfig(uts=UTSConfig(sample_ratio=0.5, token_ratio=0.5, mc_passes=3),
                       akd=AKDConfig(steps=2, batch_size=4, **akd))


@pytest.fixture(scope="session")
def pre():
    torch.manual_seed(0)
    v = synth_vocab()
    return pretrain(synth_clips(16, v, size=32), v, tiny_pretrain_config())


@pytest.fixture(scope="session")
def batch(pre):
    return make_batch(pre.encoder, synth_clips(12, pre.vocab, seed=1, size=32))
