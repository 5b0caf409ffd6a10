import dataclasses

import pytest
import torch

from paramcast.baselines.duet import DUET, frame_index
from paramcast.bench.flops import count_flops
from paramcast.catalog import get
from paramcast.methods.stablesynthnet import StableSynthNet
from paramcast.models.training import device_groups

from .synth import make_features


def _duet(**kw):
    return DUET(num_answers=7, feature_dim=16, device="cpu", head_hidden=8, epochs=1, group_size=4,
                groups_per_step=4, **kw)


def test_registered_official_structure_and_every_generator_weight_gets_a_gradient():
    assert get("duet") is DUET
    data = make_features()
    for residual in (False, True):
        m = _duet(residual=residual)
        gen = m.generator
        # HyperNetwork_FC: GRU(C -> z) over the D frames, MLP z -> z -> z (Tanh between), layer from z
        assert isinstance(gen.gru, torch.nn.GRU) and (gen.gru.input_size, gen.gru.hidden_size) == (16, 16)
        assert [type(x) for x in gen.mlp] == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear]
        assert gen.weight_gen.weight.shape == (8 * 7, 16)           # w1: z -> H·V, registered
        assert gen.bias_gen.weight.shape == (7, 16)                 # w2: z -> V
        names = set(dict(gen.named_parameters()))
        assert {"weight0", "bias0"} <= names if residual else not names & {"weight0", "bias0"}
        groups = device_groups(data.device, data.answer, 4, torch.Generator().manual_seed(0))[:4]
        loss, _, _ = m.group_loss(data, groups, torch.Generator().manual_seed(0))
        loss.backward()
        for name, p in gen.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"generator weight {name} receives no gradient"


def test_whole_layer_is_the_generator_output_and_residual_adds_w0():
    frames = torch.randn(3, 5, 16)
    m = _duet(delta_init_std=0.1)
    gen = m.generator.eval()
    z = gen.code(frames)
    w, b = m.generate(frames)
    torch.testing.assert_close(w, gen.weight_gen(z).view(3, 7, 8))         # no static term
    torch.testing.assert_close(b, gen.bias_gen(z))
    r = _duet(delta_init_std=0.1, residual=True)
    rw, rb = r.generate(frames)
    rz = r.generator.eval().code(frames)
    torch.testing.assert_close(rw, r.generator.weight0 + r.generator.weight_gen(rz).view(3, 7, 8))
    torch.testing.assert_close(rb, r.generator.bias0 + r.generator.bias_gen(rz))


def test_code_width_defaults_to_the_feature_width_and_cloud_flops_follow_the_shapes():
    m = DUET(num_answers=1500, feature_dim=192, device="cpu", epochs=0)
    assert m.generator.gru.hidden_size == 192
    up = torch.randn(5, 192)
    macs = 5 * 3 * (192 * 192 + 192 * 192) + 2 * 192 * 192 + 192 * 97 * 1500   # GRU, MLP, generated layer
    assert count_flops(m.generate, up[None]) == 2 * macs
    assert DUET(num_answers=7, feature_dim=16, device="cpu", code_dim=4, epochs=0).generator.gru.hidden_size == 4


def test_fit_upload_five_frames_and_batched_equals_loop():
    data = make_features()
    m = _duet()
    before = m.generator.weight_gen.weight.detach().clone()
    m.fit(data)
    assert not torch.equal(before, m.generator.weight_gen.weight)       # trained, unlike the public code's lists
    ups = [m.device_step(data.subset(data.device == d)) for d in range(3)]
    assert ups[0].features.shape == (5, 16)
    for u, b in zip(ups, m.cloud_step_batch(ups), strict=True):
        torch.testing.assert_close(m.cloud_step(u).weight, b.weight, atol=1e-6, rtol=1e-5)
    m.apply(m.cloud_step(ups[0]))
    assert torch.isfinite(m.predict(data)).all()
    with pytest.raises(ValueError, match="frame features"):
        m.cloud_step(dataclasses.replace(ups[0], features=torch.zeros(1, 16)))


def test_frame_index_and_cloud_flops_exceed_the_one_frame_hypernetwork():
    assert frame_index(8, 5).tolist() == [0, 2, 4, 5, 7]
    assert frame_index(3, 5).tolist() == [0, 0, 1, 2, 2]
    data = make_features()
    duet = _duet()
    ours = StableSynthNet(num_answers=7, feature_dim=16, device="cpu", head_hidden=8, proj_dim=8, hyper_hidden=8,
                          epochs=1, group_size=4, groups_per_step=4)
    ours.fit(data)
    sub = data.subset(data.device == 0)
    assert count_flops(duet.cloud_step, duet.device_step(sub)) > count_flops(ours.cloud_step, ours.device_step(sub))
