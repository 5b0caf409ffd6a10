import copy
import dataclasses

import pytest
import torch

from paramcast.catalog import get
from paramcast.methods.stablesynthnet import (
    StableSynthNet,
    StableSynthNetConfig,
    TemplateBank,
    renormalise_template,
)
from paramcast.methods.stablesynthnet.model import ParametricDriver
from paramcast.models.training import device_groups
from paramcast.types import HeadParams

from .synth import make_features

TINY = dict(proj_dim=8, hyper_hidden=8, head_hidden=8, epochs=2, group_size=4, groups_per_step=4)


def _method(**kw):
    return StableSynthNet(num_answers=7, feature_dim=16, device="cpu", **(TINY | kw))


def test_registered_under_its_name():
    assert get("stablesynthnet") is StableSynthNet


def test_template_update_equals_the_formula():
    bank = TemplateBank(dim=3, num_categories=3, beta=0.8, gamma=2.0)
    h = torch.tensor([[1.0, 0, 0], [3.0, 2, 0], [0, 0, 4.0], [5.0, 5, 5]])
    labels = torch.tensor([0, 0, 1, -1])
    bank.update(h, labels, torch.tensor([0.5, 0.5, 0.0, 9.0]))                 # first sight: P_a = H_aver
    torch.testing.assert_close(bank.templates[:, 0], torch.tensor([2.0, 1.0, 0.0]))
    torch.testing.assert_close(bank.templates[:, 1], torch.tensor([0.0, 0.0, 4.0]))
    assert bank.seen.tolist() == [True, True, False]
    p0 = bank.templates[:, 0].clone()
    p1 = bank.templates[:, 1].clone()
    h2 = torch.tensor([[4.0, 4, 4], [0.0, 2, 2], [8.0, 0, 0]])
    bank.update(h2, torch.tensor([0, 0, 1]), torch.tensor([0.75, 0.75, 0.1]))
    mean0 = torch.tensor([2.0, 3.0, 3.0])
    s0 = 1 / (2.0 * 0.75 * 2)                                                    # 1 / (γ Var N) = 1/3
    torch.testing.assert_close(bank.templates[:, 0], p0 + 0.2 * s0 * (mean0 - p0))
    s1 = 1.0                                                                     # γ Var N = 0.2 <= 1: capped
    torch.testing.assert_close(bank.templates[:, 1], p1 + 0.2 * s1 * (torch.tensor([8.0, 0, 0]) - p1))


def test_renormalisation_gives_the_target_mean_and_std():
    g = torch.Generator().manual_seed(0)
    template, feature = 3 + 5 * torch.randn(4, 32, generator=g), torch.randn(4, 32, generator=g) - 2
    out = renormalise_template(template, feature)
    torch.testing.assert_close(out.mean(-1), feature.mean(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1, unbiased=False), feature.std(-1, unbiased=False), atol=1e-3, rtol=1e-3)
    # it keeps the template's shape (a positive affine map of it): correlation 1
    assert torch.allclose(torch.corrcoef(torch.stack([out[0], template[0]]))[0, 1], torch.tensor(1.0), atol=1e-5)


def test_fusion_mixes_the_nearest_template():
    bank = TemplateBank(dim=4, num_categories=2)
    bank.update(torch.tensor([[1.0, 0, 0, 0], [0, 0, 3.0, 1]]), torch.tensor([0, 1]), torch.zeros(2))
    x = torch.tensor([[0.1, 0.2, 2.0, 0.5]])
    assert bank.nearest(x).tolist() == [1]
    want = 0.1 * renormalise_template(bank.templates[:, 1][None], x) + 0.9 * x
    torch.testing.assert_close(bank.fuse(x, 0.1), want)


def _one_step(method, data):
    labels = method.categories(data)
    from paramcast.methods.stablesynthnet.model import TemplateBank as TB

    if method.config.use_tde:
        method.templates = TB(16, 7, method.config.beta, method.config.gamma)
        method.templates.update(data.features[:, 0], labels, torch.zeros(len(labels)))  # non-empty bank
    method.bank_before_step = copy.deepcopy(method.templates)
    groups = device_groups(data.device, data.answer, 4, torch.Generator().manual_seed(0))[:4]
    terms, _, _ = method.step_losses(data, labels, groups, torch.Generator().manual_seed(0))
    return terms


@pytest.mark.parametrize("switch", ["use_dct", "use_ods", "use_tde"])
def test_each_switch_removes_its_component(switch):
    data = make_features()
    torch.manual_seed(0)
    full = _method()
    off = _method(**{switch: False})
    off.driver.load_state_dict(full.driver.state_dict())
    off.model.load_state_dict(full.model.state_dict())
    seen = {}
    for name, m in (("full", full), ("off", off)):
        m.driver.projector.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0]))
    t_full, t_off = _one_step(full, data), _one_step(off, data)
    ce = t_full["ce"]
    if switch == "use_dct":
        # the loss is CE + λ·ODS only; the InfoNCE term is absent
        torch.testing.assert_close(t_off["loss"], t_off["ce"] + off.config.ods_weight * t_off["ods"])
        assert float(t_full["cl"].detach()) > 0
    elif switch == "use_ods":
        torch.testing.assert_close(t_off["loss"], t_off["ce"] + off.config.cl_weight * t_off["cl"])
    else:
        assert off.templates is None
        # no fusion: the projector sees the raw frames; with TDE it sees F' = fuse(frames)
        torch.testing.assert_close(seen["full"], full.bank_before_step.fuse(seen["off"], full.config.fusion_lambda))
        assert not torch.allclose(seen["full"], seen["off"])
    torch.testing.assert_close(t_full["loss"], ce + full.config.cl_weight * t_full["cl"]
                               + full.config.ods_weight * t_full["ods"])


def test_without_dct_and_ods_the_contrastive_terms_send_no_gradient():
    data = make_features()
    m = _method(use_dct=False, use_ods=False)
    terms = _one_step(m, data)
    assert not terms["cl"].requires_grad and not terms["ods"].requires_grad
    m_full = _method()
    m_full.driver.load_state_dict(m.driver.state_dict())
    m_full.model.load_state_dict(m.model.state_dict())
    m_full.driver.eval(), m.driver.eval()                                       # same dropout: none
    t_full = _one_step(m_full, data)
    g_ce = torch.autograd.grad(terms["loss"], m.driver.projector.net[0].weight)[0]
    g_all = torch.autograd.grad(t_full["loss"], m_full.driver.projector.net[0].weight)[0]
    assert not torch.allclose(g_ce, g_all)   # DCT/ODS do reach the projector when on


def test_fit_adapt_predict_and_batched_cloud_step_equals_the_loop():
    data = make_features()
    m = _method()
    m.fit(data)
    assert m.log["templates_seen"] > 0 and len(m.log["train"]) == 2
    ups = [m.device_step(data.subset(data.device == d)) for d in range(4)]
    assert ups[0].features.shape == (1, 16)
    batched = m.cloud_step_batch(ups)
    for u, b in zip(ups, batched, strict=True):
        one = m.cloud_step(u)
        assert isinstance(one, HeadParams)
        torch.testing.assert_close(one.weight, b.weight, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(one.bias, b.bias, atol=1e-6, rtol=1e-5)
    m.apply(batched[0])
    logits = m.predict(data)
    assert logits.shape == (64, 7) and torch.isfinite(logits).all()
    m.reset()
    torch.testing.assert_close(m.model.weight, m.driver.weight0.detach())
    with pytest.raises(ValueError, match="expects 1 frame feature of shape"):
        m.cloud_step(dataclasses.replace(ups[0], features=torch.zeros(5, 16)))


def test_sprite_category_reads_the_meta_and_explains_when_missing():
    data = make_features()
    m = _method(category="sprite", epochs=1)
    m.fit(data)
    assert m.templates.templates.shape == (16, 3)
    data.meta.pop("category")
    with pytest.raises(ValueError, match="meta\\['category'\\]"):
        _method(category="sprite").fit(data)


def test_config_errors_say_how_to_fix():
    with pytest.raises(ValueError, match="category"):
        StableSynthNetConfig(category="colour")
    with pytest.raises(ValueError, match="beta"):
        StableSynthNetConfig(beta=1.0)


def test_template_bank_is_a_buffer_not_a_parameter():
    data = make_features()
    m = _method(epochs=1)
    m.fit(data)
    names = dict(m.templates.named_buffers())
    assert set(names) == {"templates", "seen"} and not list(m.templates.parameters())
    assert isinstance(m.driver, ParametricDriver)


def test_whole_layer_by_default_and_residual_adds_the_static_layer():
    x = torch.randn(3, 16)
    m = _method(use_tde=False, delta_init_std=0.1)                    # residual=False: seed eq. 3
    w, b = m.generate(x)
    with torch.no_grad():
        dw, db = m.driver.hyper(m.driver.projector(x))
    torch.testing.assert_close(w, dw)                                 # exactly f_h's output, no static term
    torch.testing.assert_close(b, db)
    r = _method(use_tde=False, delta_init_std=0.1, residual=True)
    rw, rb = r.generate(x)
    with torch.no_grad():
        rdw, rdb = r.driver.hyper(r.driver.projector(x))
    torch.testing.assert_close(rw, r.driver.weight0 + rdw)
    torch.testing.assert_close(rb, r.driver.bias0 + rdb)
    assert r.cloud_params() - m.cloud_params() == 7 * 8 + 7          # W_0, b_0 only with residual
