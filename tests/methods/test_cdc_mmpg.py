import math

import pytest
import torch

from paramcast.losses.vae import adr_loss, kl_standard_normal
from paramcast.methods.cdc_mmpg import CDCMMPG, CDCMMPGConfig
from paramcast.models.heads import adain
from paramcast.models.training import device_groups
from paramcast.wire import tensor_nbytes

SMALL = dict(head_hidden=8, proj_dim=8, hyper_hidden=8, latent_dim=4, vae_hidden=16, epochs=1, adr_epochs=1,
             group_size=4, groups_per_step=4, batch_size=16)


def _method(**kw):
    return CDCMMPG(num_answers=7, feature_dim=16, device="cpu", **(SMALL | kw))


def test_adain_and_losses_hand_computed():
    content = torch.tensor([[1.0, 2.0, 3.0, 6.0]])       # mean 3, var (4+1+0+9)/4 = 3.5
    style = torch.tensor([[0.0, 2.0, 0.0, 2.0]])         # mean 1, var 1
    out = adain(content, style, eps=0.0)
    expected = 1.0 * (content - 3.0) / math.sqrt(3.5) + 1.0
    torch.testing.assert_close(out, expected)
    assert out.mean().item() == pytest.approx(1.0) and out.var(unbiased=False).item() == pytest.approx(1.0)

    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * mean([1 + 1 - 1 - 0, 0 + 2 - 1 - ln2]) = 0.25 * (2 - ln 2)
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(0.25 * (2 - math.log(2.0)))

    gen, rec = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]])
    glob, anchor = torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 0.0]])  # MSE(F_a, F_g) = 2, MSE(F_a, F_m) = 0.5
    losses = adr_loss(gen, rec, glob, anchor, mu, logvar, lam=0.1)
    assert losses["rec"].item() == pytest.approx((1 + 1) / 2)               # MSE(F̂, F_g)
    assert losses["ag"].item() == pytest.approx(0.1 * 2 + 0.5)              # eq. 17 as printed (the default)
    assert losses["total"].item() == pytest.approx(losses["ag"].item() + 1.0 + 0.25 * (2 - math.log(2.0)))
    ours = adr_loss(gen, rec, glob, anchor, mu, logvar, lam=0.1, lam_on="anchor")
    assert ours["ag"].item() == pytest.approx(2 + 0.1 * 0.5)                # paramcast's placement
    with pytest.raises(ValueError, match="lam_on"):
        adr_loss(gen, rec, glob, anchor, mu, logvar, lam_on="both")


def test_eq17_placement_is_a_config_field_used_by_phase_one(tiny_features):
    assert CDCMMPGConfig().lam_on == "global" and CDCMMPGConfig().residual is False
    with pytest.raises(ValueError, match="lam_on"):
        CDCMMPGConfig(lam_on="x")
    feats = tiny_features.features[:16]
    printed, ours = _method(), _method(lam_on="anchor")
    ours.generator.load_state_dict(printed.generator.state_dict())
    a = printed._adr_losses(feats, torch.Generator().manual_seed(0))
    b = ours._adr_losses(feats, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a["rec"], b["rec"])
    assert not torch.allclose(a["ag"], b["ag"])


def test_every_hypernetwork_and_vae_parameter_gets_a_gradient(tiny_features):
    m = _method()
    g = torch.Generator().manual_seed(0)
    m.generator.train()
    m._adr_losses(tiny_features.features[:16], g)["total"].backward()
    for name, p in m.generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"VAE parameter {name} got no gradient"
    groups = device_groups(tiny_features.device, tiny_features.answer, 4, g)[:4]
    loss, _, _ = m._group_loss(tiny_features, groups, g)
    loss.backward()
    for name, p in list(m.adaptor.named_parameters()) + list(m.model.static.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, f"FDA parameter {name} got no gradient"
    # Phase II must not train the (frozen) adaptive generator: its parameters take no part in the loss
    m.generator.zero_grad(set_to_none=True)
    m._group_loss(tiny_features, groups, g)[0].backward()
    assert all(p.grad is None for p in m.generator.parameters())


def test_two_training_steps_reduce_the_loss(tiny_features):
    m = _method(dropout=0.0)
    groups = device_groups(tiny_features.device, tiny_features.answer, 4, torch.Generator().manual_seed(0))[:6]
    params = list(m.adaptor.parameters()) + list(m.model.static.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(3):
        loss, _, _ = m._group_loss(tiny_features, groups, torch.Generator().manual_seed(1))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[1] < losses[0]


def test_cloud_step_batch_equals_loop_and_payload_sizes(tiny_features):
    m = _method()
    m.fit(tiny_features)
    uploads = [m.device_step(tiny_features.subset(tiny_features.device == d)) for d in range(4)]
    assert all(u.features.shape == (1, 16) for u in uploads)
    batched = m.cloud_step_batch(uploads)
    for u, b in zip(uploads, batched, strict=True):
        one = m.cloud_step(u)
        assert one.weight.shape == (7, 8) and one.bias.shape == (7,)
        torch.testing.assert_close(one.weight, b.weight, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(one.bias, b.bias, atol=1e-6, rtol=1e-5)
        assert one.device_id == u.device_id
    assert tensor_nbytes(uploads[0]) == 16 * 4                     # one C-wide fp32 feature
    assert tensor_nbytes(batched[0]) == (8 + 1) * 7 * 4            # (H + 1) * V fp32 values


def test_generated_params_equal_a_plain_linear(tiny_features):
    m = _method()
    m.fit(tiny_features)
    dev = tiny_features.subset(tiny_features.device == 2)
    update = m.cloud_step(m.device_step(dev))
    m.apply(update)
    lin = torch.nn.Linear(8, 7)
    lin.weight.data.copy_(update.weight)
    lin.bias.data.copy_(update.bias)
    with torch.no_grad():
        expected = lin(m.model.static(dev.features.mean(1)))
    torch.testing.assert_close(m.predict(dev), expected)


def test_residual_starts_at_the_static_layer():
    m = _method(delta_init_std=0.0, residual=True)
    w, b = m.generate(torch.randn(3, 16))
    torch.testing.assert_close(w, m.adaptor.weight0.detach().expand(3, -1, -1))
    torch.testing.assert_close(b, m.adaptor.bias0.detach().expand(3, -1))
    assert "weight0" in dict(m.adaptor.named_parameters())


def test_whole_layer_equals_the_hypernetwork_output_exactly():
    m = _method(delta_init_std=0.1)                                   # residual=False: the seed's default
    x = torch.randn(3, 16)
    w, b = m.generate(x)
    with torch.no_grad():
        e = m.adaptor.projector(m.generator(x, sample=False)["generated"])
        dw, db = m.adaptor.hyper(e)
    torch.testing.assert_close(w, dw)                                 # no static term
    torch.testing.assert_close(b, db)
    assert not {"weight0", "bias0"} & set(dict(m.adaptor.named_parameters()))
    assert m.cloud_params() == sum(p.numel() for mod in (m.adaptor, m.generator) for p in mod.parameters())


def test_wrong_upload_shape_is_refused(tiny_features):
    m = _method()
    up = m.device_step(tiny_features)
    bad = type(up)(device_id="x", method=up.method, task=up.task, model_version="", features=torch.zeros(2, 16))
    with pytest.raises(ValueError, match="expects 1 frame feature of shape"):
        m.cloud_step(bad)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="dropout"):
        CDCMMPGConfig(dropout=1.5)
    with pytest.raises(TypeError, match="no field"):
        CDCMMPG(num_answers=3, feature_dim=4, device="cpu", not_a_field=1)


def test_serve_dtype_bf16_is_one_lowp_gemm_close_to_fp32():
    from paramcast import catalog as registry
    from paramcast.types import Upload

    a = registry.create("cdc-mmpg", num_answers=30)
    b = registry.create("cdc-mmpg", num_answers=30, serve_dtype="bf16")
    ups = [Upload(device_id=f"d{i}", method=a.name, task=a.task, model_version=a.model_version,
                  features=torch.randn(1, 192, generator=torch.Generator().manual_seed(i))) for i in range(4)]
    with torch.inference_mode():
        ha, hb = a.cloud_step_batch(ups), b.cloud_step_batch(ups)
    for x, y in zip(ha, hb, strict=True):
        assert y.weight.dtype == torch.float32 and y.weight.shape == x.weight.shape
        err = (x.weight - y.weight).abs().max()
        assert 0 < err <= 2 ** -7 * x.weight.abs().max()
    with torch.no_grad():  # the bf16 copy follows the weights
        b.adaptor.hyper.out.weight.mul_(2)
    with torch.inference_mode():
        h2 = b.cloud_step_batch(ups[:1])[0]
    assert torch.allclose(h2.weight, 2 * hb[0].weight, rtol=0.02, atol=1e-6)
    with pytest.raises(ValueError, match="serve_dtype"):
        registry.create("cdc-mmpg", num_answers=30, serve_dtype="int3")
