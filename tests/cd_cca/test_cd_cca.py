"""CD-CCA: UTS, AKD, DWC, the TTA / KD baselines and the captioning metrics, on tiny synthetic data."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from paramcast import compression, wire
from paramcast.baselines.kd import CWD, PKD
from paramcast.baselines.tta import CoTTA, TentContinual, collect_norm_params, stochastic_restore, tent_loss
from paramcast.bench.captioning import bleu4, cider
from paramcast.losses.entropy import entropy, mc_dropout_variance
from paramcast.losses.kd import ChannelWiseDivergence, PKDLoss
from paramcast.methods.cd_cca import (
    CDCCA,
    DWCConfig,
    DynamicWeightCompression,
    UncertaintyTokenSampler,
    UTSConfig,
    adapter_parameters,
    unpack_tokens,
)
from paramcast.models.mllm_tasks import answer_logits
from paramcast.types import Upload

from .conftest import small_config as _small
from .synth import synth_clips, synth_vocab


# -- eq. 2-4 --------------------------------------------------------------------------------------
def test_entropy_matches_hand_computation():
    p = torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    got = entropy(p.log())
    assert got[0].item() == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), abs=1e-6)
    assert got[1].item() == pytest.approx(0.0, abs=1e-7)


def test_mc_dropout_variance_matches_hand_computation():
    passes = torch.tensor([[[1.0, 2.0]], [[3.0, 2.0]], [[5.0, 2.0]]])  # (M=3, T=1, C=2)
    # channel 0: mean 3, var (4 + 0 + 4) / 3 = 8/3; channel 1: 0 -> token variance 4/3
    assert mc_dropout_variance(passes).item() == pytest.approx(4 / 3)


def test_uts_keeps_most_uncertain_samples_and_most_variable_tokens():
    uts = UncertaintyTokenSampler(UTSConfig(sample_ratio=0.5, token_ratio=0.25))
    assert uts.select_samples(torch.tensor([0.1, 0.9, 0.5, 0.7])).tolist() == [1, 3]
    var = torch.tensor([[0.1, 0.9, 0.2, 0.3, 0.8, 0.0, 0.05, 0.4]])
    assert uts.select_tokens(var).nonzero()[:, 1].tolist() == [1, 4]
    thr = UncertaintyTokenSampler(UTSConfig(variance_threshold=0.35))
    assert thr.select_tokens(var).nonzero()[:, 1].tolist() == [1, 4, 7]


def test_uts_really_shrinks_the_encoded_payload(pre, batch):
    meta = {"device_id": "d", "method": "cd-cca", "task": "mllm", "model_version": "v0"}
    u = torch.arange(len(batch), dtype=torch.float)
    full = UncertaintyTokenSampler(UTSConfig(sample_mode="all", token_mode="all"))(
        pre.encoder, batch.frames, batch.image, u, batch.question, meta)
    kept = UncertaintyTokenSampler(UTSConfig(sample_ratio=0.25, token_ratio=0.5, mc_passes=3))(
        pre.encoder, batch.frames, batch.image, u, batch.question, meta)
    S, T, C = 3, batch.image.shape[1], batch.image.shape[2]
    assert kept.features.shape == (S * round(0.5 * T), C)
    assert full.features.shape == (len(batch) * T, C)

    def encoded(up):
        return len(wire.encode(Upload(**{k: getattr(up, k) for k in
                                        ("device_id", "method", "task", "model_version", "features",
                                         "positions", "samples")})))
    assert encoded(kept) < 0.2 * encoded(full)
    image, mask = unpack_tokens(kept, T)  # the cloud rebuilds exactly the kept tokens
    assert image.shape == (S, T, C) and int(mask.sum()) == kept.features.shape[0]
    assert torch.equal(image[kept.samples, kept.positions], kept.features)
    assert torch.equal(batch.image.cpu()[u.argsort(descending=True)[:S]][mask], kept.features)


# -- eq. 5-6: only the adapter set changes ----------------------------------------------------------
def test_akd_changes_only_adapters_norms_biases_queries(pre, batch):
    m = CDCCA(pre, _small())
    before = {k: v.detach().clone() for k, v in m.cloud_student.named_parameters()}
    teacher_before = {k: v.detach().clone() for k, v in pre.teacher.named_parameters()}
    m.cloud_step(m.device_step(batch))
    allowed = set(adapter_parameters(m.cloud_student))
    changed = {k for k, v in m.cloud_student.named_parameters() if not torch.equal(v, before[k])}
    assert changed and changed <= allowed
    assert any("lora_" in k for k in changed) and any("query_tokens" in k for k in changed)
    assert all(torch.equal(v, teacher_before[k]) for k, v in pre.teacher.named_parameters())


def test_pkd_equals_hand_computation():
    s = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 1.0]]])  # (B=1, L=3, C=2)
    t = torch.tensor([[[2.0, 1.0], [2.0, 3.0], [8.0, 2.0]]])

    def z(x):  # per channel over the 3 tokens, unbiased std
        m = x.mean(0)
        sd = (((x - m) ** 2).sum(0) / (x.shape[0] - 1)).sqrt()
        return (x - m) / (sd + 1e-6)
    expected = ((z(s[0]) - z(t[0])) ** 2).mean() / 2
    assert PKDLoss()(s, t).item() == pytest.approx(expected.item(), rel=1e-5)


def test_pkd_of_a_single_token_is_finite():
    """One sample of one token: the unbiased std would be NaN (and so the loss, and every gradient)."""
    s = torch.randn(1, 1, 4, requires_grad=True)
    loss = PKDLoss()(s, torch.randn(1, 1, 4))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all()


def test_cwd_equals_hand_computation():
    s = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # (B=1, L=2, C=2)
    t = torch.tensor([[[0.0, 0.0], [2.0, 1.0]]])
    tau = 2.0

    def sm(a, b):
        ea, eb = math.exp(a / tau), math.exp(b / tau)
        return ea / (ea + eb), eb / (ea + eb)
    kl = 0.0
    for c in range(2):
        pt, ps = sm(t[0, 0, c].item(), t[0, 1, c].item()), sm(s[0, 0, c].item(), s[0, 1, c].item())
        kl += sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))
    assert ChannelWiseDivergence(tau)(s, t).item() == pytest.approx(tau**2 * kl / 2, rel=1e-5)


def test_kd_baselines_use_feature_loss_without_pseudo_labels(pre, batch):
    for cls, kind in ((PKD, "pkd"), (CWD, "cwd")):
        m = cls(pre, _small())
        assert m.config.akd.feature_loss == kind and not m.config.akd.use_pl
    m.cloud_step(m.device_step(batch))
    assert m.log[0]["losses"]["ce"] == 0 and m.log[0]["losses"]["total"] > 0


# -- eq. 7-8 ----------------------------------------------------------------------------------------
def test_dwc_round_trip_within_quantiser_bound():
    g = torch.Generator().manual_seed(0)
    base = {"a": torch.randn(300, generator=g), "b": torch.randn(8, 16, generator=g)}
    upd = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    for scheme in ("nf4", "int8"):
        dwc = DynamicWeightCompression(DWCConfig(scheme=scheme, energy=1.0, budget=None))
        sent, received = dwc.compress(upd, base)
        dev = {k: v.clone() for k, v in base.items()}
        dwc.apply(dev, received)
        for k in base:
            err = (dev[k] - upd[k]).abs()
            assert (err <= compression.error_bound(upd[k] - base[k], scheme) + 1e-7).all()
    assert dwc.nbytes(sent) < 0.3 * sum(4 * v.numel() for v in base.values())


def test_dwc_keeps_only_the_significant_tensors():
    base = {"big": torch.zeros(10), "small": torch.zeros(10), "same": torch.zeros(10)}
    upd = {"big": torch.ones(10), "small": torch.full((10,), 0.1), "same": torch.zeros(10)}
    assert DynamicWeightCompression(DWCConfig(energy=0.9, budget=None)).select(
        {k: upd[k] - base[k] for k in base}) == ["big"]


def test_dwc_budget_caps_the_bytes_and_ranks_by_energy_per_byte():
    g = torch.Generator().manual_seed(0)
    # "wide": the most energy in all, the least per byte; "bias" and "norm": small and dense.
    deltas = {"wide": 0.05 * torch.randn(4096, generator=g), "bias": torch.randn(64, generator=g),
              "norm": 0.5 * torch.randn(64, generator=g), "lora": 0.1 * torch.randn(512, generator=g)}
    fp16 = 2 * sum(d.numel() for d in deltas.values())
    for budget in (1 / 6, 1 / 12, 1 / 30):
        dwc = DynamicWeightCompression(DWCConfig(scheme="nf4", energy=1.0, budget=budget))
        kept = dwc.select(deltas)
        assert dwc.nbytes({k: deltas[k] for k in kept}) <= budget * fp16
        assert kept[0] == "bias"  # the densest update goes first
    # without a cap, the energy rule alone: everything at energy 1.0
    assert set(DynamicWeightCompression(DWCConfig(energy=1.0, budget=None)).select(deltas)) == set(deltas)
    # 1/30 of 9,472 B is 315 B: no room for "wide" (~2.1 KB in NF4), but the small tensors fit
    tight = DynamicWeightCompression(DWCConfig(scheme="nf4", energy=1.0, budget=1 / 30)).select(deltas)
    assert "wide" not in tight and "bias" in tight


def test_device_applies_the_delta_through_the_wire(pre, batch):
    m = CDCCA(pre, _small())
    update = m.cloud_step(m.device_step(batch))
    received = wire.decode(wire.encode(update))
    m.apply(received)
    dev = adapter_parameters(m.model)
    held = m.cloud_side.state(m.config.device_id).held  # the cloud's copy of what the device holds
    assert all(torch.allclose(dev[k], held[k], atol=1e-6) for k in dev)
    before = {k: v.detach().clone() for k, v in dev.items()}
    m.apply(received)  # the delta the device already holds (v1): a no-op, not a second addition
    assert all(torch.equal(before[k], v) for k, v in adapter_parameters(m.model).items())
    stale = dataclasses.replace(received, base_version="v7", model_version="v8")
    with pytest.raises(ValueError, match="delta computed against"):
        m.apply(stale)


# -- baselines --------------------------------------------------------------------------------------
def test_tent_changes_only_layernorm_affine_and_equals_the_official_update(pre, batch):
    t = TentContinual(pre, lr=1e-2)
    before = {k: v.detach().clone() for k, v in t.model.named_parameters()}
    # the official Tent: configure_model (train mode, only the norms' affine parameters), Adam, then
    # forward_and_adapt: outputs = model(x); softmax_entropy(outputs).mean(0).backward(); step
    ref = copy.deepcopy(pre.student).train().requires_grad_(False)
    norms = collect_norm_params(ref)
    for p in norms.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(norms.values(), lr=1e-2)
    torch.manual_seed(0)
    x, _ = answer_logits(ref, batch.image, None, batch.question)
    official = -(x.softmax(1) * x.log_softmax(1)).sum(1).mean(0)
    assert tent_loss(x).item() == pytest.approx(official.item(), rel=1e-6)
    official.backward()
    opt.step()
    torch.manual_seed(0)
    t.device_step(batch)                                    # 12 rows: one batch
    torch.testing.assert_close(t.last_output, x.detach())   # the output from before the update
    for k, v in t.model.named_parameters():
        torch.testing.assert_close(v, dict(ref.named_parameters())[k], msg=k)
    changed = {k for k, v in t.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and changed <= set(collect_norm_params(t.model))


def test_tent_caption_term_is_an_option_that_changes_the_update(pre, batch):
    plain, both = TentContinual(pre, lr=1e-2), TentContinual(pre, lr=1e-2, caption_entropy=True)
    torch.manual_seed(0)
    plain.device_step(batch)
    torch.manual_seed(0)
    both.device_step(batch)
    assert any(not torch.equal(a, b) for a, b in zip(plain.model.parameters(), both.model.parameters(), strict=True))


def test_cotta_stochastic_restore_resets_about_p():
    g = torch.Generator().manual_seed(0)
    src = {"w": torch.zeros(200_000)}
    params = {"w": torch.ones(200_000)}
    frac = stochastic_restore(params, src, 0.01, g)
    assert frac == pytest.approx(0.01, abs=0.002)
    assert (params["w"] == 0).float().mean().item() == pytest.approx(frac)


def test_cotta_adapts_and_ema_teacher_moves_slowly(pre, batch):
    c = CoTTA(pre, lr=1e-2, n_augment=2)
    src = {k: v.detach().clone() for k, v in c.model.named_parameters()}
    c.device_step(batch)
    drift = max((v - src[k]).abs().max().item() for k, v in c.model.named_parameters())
    sdrift = max((v - src[k]).abs().max().item() for k, v in c.student.named_parameters())
    assert 0 < drift < sdrift and len(c.restored) == 1


def test_cotta_as_published_32_views_batch_mean_test_restore_over_every_trainable_weight(pre, batch):
    c = CoTTA(pre, lr=1e-2)
    k = c.config
    assert (k.n_augment, k.anchor_threshold, k.restore_p, k.ema, k.per_sample) == (32, 0.92, 0.01, 0.999, False)
    assert set(c.params) == {n for n, p in c.student.named_parameters() if p.requires_grad}
    calls = []
    hook = pre.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        c.device_step(batch)                               # the tiny student is far below 0.92 confident
    finally:
        hook.remove()
    assert c.views == [32] and len(calls) == 32            # one encoder pass per augmented view
    n = sum(p.numel() for p in c.params.values())
    assert abs(c.restored[0] - 0.01) < 4 * math.sqrt(0.01 * 0.99 / n)   # binomial, 4 sigma
    sure = CoTTA(pre, anchor_threshold=0.0)                 # the batch mean is never below 0: no views
    sure.device_step(batch)
    assert sure.views == [0]


# -- captioning metrics -----------------------------------------------------------------------------
def test_bleu4_and_cider_match_known_values():
    assert bleu4(["a b c d e f"], ["a b c d e g"]) == pytest.approx((5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25, rel=1e-6)
    assert cider(["x y z w", "p q r s"], ["x y z w", "p q r s"]) == pytest.approx(10.0)
    assert cider(["x y", "p q"], ["a b", "c d"]) == 0.0


def test_bench_cdcca_tiny_end_to_end(tmp_path, monkeypatch):
    """The whole `bench cdcca` loop on the tiny preset (32x32 frames): every method, Table 5 like for like."""
    from paramcast.bench.cdcca import bench_cdcca

    monkeypatch.setenv("PARAMCAST_DATA", str(tmp_path / "data"))
    paths = bench_cdcca(preset="tiny", source="shapes", rounds=1, round_rows=40, seeds=2, epochs=1, ablations=False,
                        token_study=False, out=tmp_path / "cdcca")
    res = json.loads(Path(paths["json"]).read_text())
    assert res["seeds"] == [0, 1] and len(res["runs"]) == 2
    run = res["runs"][0]
    assert {"Source-only", "TENT-continual", "CoTTA", "PKD", "ChannelWiseDivergence", "CD-CCA"} <= set(run["results"])
    c = run["communication"]
    # the uplink is one message (tokens + question ids as `text`); header bytes come on top of tensor bytes
    assert 0 < c["cdcca_up_tensor_bytes"] < c["cdcca_up_bytes"]
    assert c["downlink_ratio"] == c["dwc_down_bytes"] / c["full_delta_fp16_bytes"]
    assert c["downlink_ratio_wire"] == c["cdcca_down_bytes"] / c["full_delta_fp16_wire_bytes"]
    assert 0 < c["downlink_ratio"] <= 1 / 6  # DWC's default byte budget holds on the wire's own count
    # the summary's gains are paired per seed
    gains = [r["results"]["CD-CCA"]["mean"]["MC"] - r["results"]["Source-only"]["mean"]["MC"] for r in res["runs"]]
    assert res["summary"]["methods"]["CD-CCA"]["gain_MC"]["values"] == pytest.approx(gains)
    assert res["summary"]["methods"]["Source-only"]["gain_DA"]["mean"] == 0
    # the paramcast readings of TENT / CoTTA run next to the published ones, paired per seed
    rd = res["summary"]["readings"]["CoTTA (paramcast: per-sample test, 4 views, +caption)"]
    assert rd["vs"] == "CoTTA" and rd["MC"]["values"] == pytest.approx(
        [r["results"]["CoTTA (paramcast: per-sample test, 4 views, +caption)"]["mean"]["MC"]
         - r["results"]["CoTTA"]["mean"]["MC"] for r in res["runs"]])
    assert "TENT-continual (+caption entropy)" in res["summary"]["readings"]
    md = Path(paths["markdown"]).read_text()
    assert "over 2 seeds" in md and "Table 5" in md and (tmp_path / "cdcca.png").exists()
    # the seed's claims, paired per seed; without ablation / token rows only Tables 1-2's claims are judged
    cl = {(c["claim"].split(" (")[0], c["metric"]): c for c in res["summary"]["claims"]}
    c = cl[("CD-CCA > Source-only", "MC")]
    assert c["diff"] == pytest.approx(sum(gains) / 2, abs=0.01) and not any("UTS" in k[0] for k in cl)
    assert "holds" in md.split("seed's claims")[1]
    # --from-json re-renders the same report, keeping the command that measured it
    from paramcast.bench.cdcca import rerender

    again = rerender(Path(paths["json"]), tmp_path / "again")
    assert Path(again["markdown"]).read_text().split("\n", 2)[2] == md.split("\n", 2)[2]
    assert json.loads(Path(again["json"]).read_text())["command"] == res["command"]
    # several results merge into one over their seeds (seed 1 measured apart from seed 0): the same summary
    from paramcast.bench.report import write_result

    apart = [write_result(run | {"command": f"measured seed {i}"}, tmp_path / f"seed{i}", "")["json"]
             for i, run in enumerate(res["runs"])]
    merged = json.loads(Path(rerender(apart[::-1], tmp_path / "merged")["json"]).read_text())
    assert merged["seeds"] == res["seeds"] and merged["summary"]["claims"] == res["summary"]["claims"]
    assert [p["command"] for p in merged["parts"]] == ["measured seed 1", "measured seed 0"]
    assert "measured seed 1" in (tmp_path / "merged.md").read_text()
    with pytest.raises(ValueError, match="more than one"):
        rerender([apart[0], apart[0]], tmp_path / "twice")


def test_claim_verdicts():
    """The fixed rule every seed's claim is judged by (paired difference A - B: mean, std over seeds)."""
    from paramcast.bench.report import verdict

    assert verdict(1.0, 0.5, ">") and not verdict(1.0, 1.5, ">") and not verdict(-1.0, 0.5, ">")
    assert verdict(-1.0, 1.5, "≥") and not verdict(-1.0, 0.5, "≥")
    assert verdict(-0.8, 0.4, "≥", -0.5) and not verdict(-1.2, 0.4, "≥", -0.5)   # a cost of at most 0.5 point
    assert verdict(0.7, 3.0, "≈", 0.8) and not verdict(-0.9, 0.0, "≈", 0.8)
    assert verdict(7.0, 1.0, "≫") and not verdict(5.5, 1.0, "≫")
    with pytest.raises(ValueError):
        verdict(0.0, 0.0, "<")


def test_domains_keep_heldout_categories_and_round_devices_out_of_pretraining():
    """nocaps' out-domain must be unseen by every pretrained model, and the rounds' devices too; the
    teacher-devices study widens only the teacher's corpus, which contains the student's."""
    from types import SimpleNamespace

    from paramcast.bench.cdcca import CDCCABenchConfig, _domains
    from paramcast.data.base import Vocab

    v = synth_vocab()
    vocab = Vocab(words=v.words, answers=v.answers, devices=[f"d{i}" for i in range(8)] + ["u0", "u1"],
                  categories=[f"c{i}" for i in range(6)], qtypes=["q0"])
    hist = synth_clips(400, vocab, size=8)
    hist.device = torch.arange(400) % 8
    hist.category = torch.arange(400) % 6
    unseen = synth_clips(40, vocab, seed=3, size=8)
    unseen.device = 8 + torch.arange(40) % 2
    ds = SimpleNamespace(vocab=vocab, history=hist, unseen=unseen)
    for teacher_devices in (0, 6):
        cfg = CDCCABenchConfig(source_devices=2, holdout_categories=2, max_source=50, rounds=2,
                               teacher_devices=teacher_devices)
        teacher, student, rounds, info = _domains(ds, cfg)
        held = {4, 5}
        for part in (teacher, student):
            assert not set(part.category.tolist()) & held and set(part.device.tolist()) <= set(range(8))
        assert len(student) == 50 and set(student.device.tolist()) == {0, 1}
        assert set(student.clip_id.tolist()) <= set(teacher.clip_id.tolist())
        assert set(teacher.device.tolist()) == ({0, 1} if teacher_devices == 0 else set(range(6)))
        assert [set(r.device.tolist()) for r, _ in rounds] == [{8}, {9}]
        assert all(s == "out" for r, split in rounds for c, s in zip(r.category.tolist(), split, strict=True) if c in held)
    # the all-categories study: held-out categories reach the teacher, only from devices 2..5, never the student
    teacher, student, rounds, info = _domains(ds, CDCCABenchConfig(source_devices=2, holdout_categories=2, max_source=50,
                                                                   rounds=2, teacher_devices=6, teacher_all_categories=True))
    from_held = teacher.subset(torch.isin(teacher.category, torch.tensor([4, 5])).nonzero().flatten())
    assert len(from_held) == info["teacher_heldout_rows"] > 0 and set(from_held.device.tolist()) == {2, 3, 4, 5}
    assert not set(student.category.tolist()) & {4, 5} and set(teacher.device.tolist()) == set(range(6))
    with pytest.raises(ValueError, match="teacher_devices"):
        CDCCABenchConfig(source_devices=2, teacher_all_categories=True)


def test_train_names_an_mllm_checkpoint_without_an_empty_model_version(pre, tmp_path):
    import hashlib

    from paramcast.cli.train import identity

    method = CDCCA(pre, _small())
    ckpt = method.save_checkpoint(tmp_path / "cd-cca.safetensors")
    said = identity(method, ckpt)
    assert "model version" not in said.split(";")[0]          # no empty "model version " any more
    assert said.startswith(f"sha256 {hashlib.sha256(ckpt.read_bytes()).hexdigest()[:12]};") and "v0" in said
    method.model_version = "cd-cca-7"                        # a method that has one is named by it
    assert identity(method, ckpt) == "model version cd-cca-7"
