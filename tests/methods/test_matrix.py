"""The common matrix every registered method goes through (fit, the interface's shapes, reset, what changes)."""

import copy

import pytest
import torch

from paramcast import registry
from paramcast.types import HeadParams, Upload

SMALL = {
    "source-only": dict(head_hidden=8, epochs=2),
    "f-linear": dict(head_hidden=8, epochs=2, k=6, adapt_steps=5, adapt_lr=5e-2),
    "fine-tuning": dict(head_hidden=8, epochs=2, k=6, adapt_steps=3, adapt_lr=5e-2),
    "f-hyper": dict(head_hidden=8, proj_dim=8, hyper_hidden=8, epochs=2, group_size=4, groups_per_step=4,
                    delta_init_std=0.1),
    "cdc-mmpg": dict(head_hidden=8, proj_dim=8, hyper_hidden=8, latent_dim=4, vae_hidden=16, epochs=2,
                     adr_epochs=1, group_size=4, groups_per_step=4, batch_size=16, delta_init_std=0.1),
}


def _create(name, enc, V):
    try:
        return registry.create(name, num_answers=V, feature_dim=enc.hidden, encoder=enc, device="cpu", seed=0,
                               **SMALL.get(name, {}))
    except TypeError as exc:  # a method of another task with another constructor
        pytest.skip(f"{name} does not take the video-QA head constructor: {exc}")


def _params(obj):
    mods = {k: v for k, v in vars(obj).items() if isinstance(v, torch.nn.Module)}
    return {f"{k}.{n}": p.detach().clone() for k, m in mods.items() for n, p in m.state_dict().items()}


@pytest.mark.parametrize("name", registry.available())
def test_method_matrix(name, tiny_encoder_and_data):
    enc, fs, voc = tiny_encoder_and_data
    V = len(voc.answers)
    enc_before = copy.deepcopy(enc.state_dict())
    m = _create(name, enc, V)
    m.fit(fs)
    m.reset()
    dev = fs.subset(fs.device == 1)
    shots, rest = dev.subset(torch.arange(6)), dev.subset(torch.arange(6, len(dev)))
    before = m.predict(rest)
    assert before.shape == (len(rest), V) and torch.isfinite(before).all()
    cloud_before = _params(m)

    upload = m.device_step(shots)
    if m.collaborative:
        frames = getattr(m.config, "frames", 1) if name == "duet" else 1  # DUET uploads D frame features
        assert isinstance(upload, Upload) and upload.features.shape == (frames, enc.hidden)
        update = m.cloud_step(upload)
        assert isinstance(update, HeadParams) and torch.isfinite(update.weight).all()
        m.apply(update)
    else:
        assert upload is None
    after = m.predict(rest)
    assert after.shape == (len(rest), V) and torch.isfinite(after).all()
    changed = {k for k, v in _params(m).items() if not torch.equal(v, cloud_before[k])}

    if name == "source-only":
        assert not changed and torch.equal(after, before)
    elif name == "f-linear":
        assert changed and all(k.startswith("head.") for k in changed), changed
    elif name == "fine-tuning":
        assert any(k.startswith("_own_encoder.") for k in changed) and any(k.startswith("head.") for k in changed)
    elif m.collaborative:
        # adaptation installs a generated layer on the device; nothing in the cloud model moves
        assert changed and all(k.startswith("model.") and k.split(".")[1] in ("weight", "bias") for k in changed), changed
        assert not torch.allclose(after, before)
    # the shared, frozen encoder is never touched
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in enc_before.items())

    m.reset()
    torch.testing.assert_close(m.predict(rest), before)
