import dataclasses

import pytest
import torch

from paramcast.baselines.duet import DUET, frame_index
from paramcast.bench.flops import count_flops
from paramcast.methods.stablesynthnet import StableSynthNet
from paramcast.models.training import device_groups
from paramcast.registry import get

from .synth import make_features


def _duet(**kw):
    return DUET(num_answers=7, feature_dim=16, device="cpu", head_hidden=8, epochs=1, group_size=4,
                groups_per_step=4, **kw)


def test_registered_and_every_generator_weight_is_registered_and_gets_a_gradient():
    assert get("duet") is DUET
    data = make_features()
    m = _duet()
    gen = dict(m.generator.named_parameters())
    assert {"norm.weight", "norm.bias", "out.weight", "out.bias", "weight0", "bias0"} <= set(gen)
    assert gen["out.weight"].shape == (9 * 7, 5 * 16)            # (H+1)·V × D·C: DUET's w1, registered
    groups = device_groups(data.device, data.answer, 4, torch.Generator().manual_seed(0))[:4]
    loss, _, _ = m.group_loss(data, groups, torch.Generator().manual_seed(0))
    loss.backward()
    for name, p in m.generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"generator weight {name} receives no gradient"


def test_fit_upload_five_frames_and_batched_equals_loop():
    data = make_features()
    m = _duet()
    before = m.generator.out.weight.detach().clone()
    m.fit(data)
    assert not torch.equal(before, m.generator.out.weight)       # trained, unlike the public code's lists
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
