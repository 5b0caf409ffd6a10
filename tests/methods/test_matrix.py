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


@pytest.mark.parametrize("name", registry.available())
def test_checkpoint_round_trip(name, tiny_encoder_and_data, tmp_path):
    """save_checkpoint -> registry.from_checkpoint rebuilds the same method: same predictions, same update."""
    enc, fs, voc = tiny_encoder_and_data
    m = _create(name, enc, len(voc.answers))
    m.fit(fs)
    m.reset()
    path = m.save_checkpoint(tmp_path / f"{name}.safetensors")
    again = registry.from_checkpoint(path, encoder=enc, device="cpu")
    assert type(again) is type(m) and getattr(again, "model_version", None) == getattr(m, "model_version", None)
    dev = fs.subset(fs.device == 1)
    torch.testing.assert_close(again.predict(dev), m.predict(dev))
    if m.collaborative:
        a, b = m.cloud_step(m.device_step(dev)), again.cloud_step(again.device_step(dev))
        torch.testing.assert_close(a.weight, b.weight)
        torch.testing.assert_close(a.bias, b.bias)


def test_checkpoint_of_another_method_is_refused(tiny_encoder_and_data, tmp_path):
    enc, fs, voc = tiny_encoder_and_data
    src = _create("source-only", enc, len(voc.answers))
    path = src.save_checkpoint(tmp_path / "so.safetensors")
    other = _create("cdc-mmpg", enc, len(voc.answers))
    with pytest.raises(ValueError, match="'source-only' checkpoint"):
        other.load_checkpoint(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a safetensors checkpoint"):
        registry.from_checkpoint(tmp_path / "junk.safetensors")
