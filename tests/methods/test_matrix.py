"""The common matrix every registered method goes through (fit, the interface's shapes, reset, what changes).

Two tasks: the video-QA methods (frozen encoder features in, ``HeadParams`` down) and the MLLM methods
of CD-CCA's tables (clips in, ``WeightDelta`` down); each method is built from registry arguments only.
"""

import copy

import pytest
import torch

from paramcast import catalog as registry
from paramcast import wire
from paramcast.methods.cd_cca import MLLMSourceOnly, mllm_shapes
from paramcast.models.training import ANSWER_CE
from paramcast.types import HeadParams, Upload, WeightDelta

SMALL = {
    "source-only": dict(head_hidden=8, epochs=2),
    "f-linear": dict(head_hidden=8, epochs=2, k=6, adapt_steps=5, adapt_lr=5e-2),
    "fine-tuning": dict(head_hidden=8, epochs=2, k=6, adapt_steps=3, adapt_lr=5e-2),
    "f-hyper": dict(head_hidden=8, proj_dim=8, hyper_hidden=8, epochs=2, group_size=4, groups_per_step=4,
                    delta_init_std=0.1),
    "cdc-mmpg": dict(head_hidden=8, proj_dim=8, hyper_hidden=8, latent_dim=4, vae_hidden=16, epochs=2,
                     adr_epochs=1, group_size=4, groups_per_step=4, batch_size=16, delta_init_std=0.1),
}


_CDCCA = {"config": {"uts": {"sample_ratio": 0.5, "mc_passes": 3}, "akd": {"steps": 2, "batch_size": 4}}}
MLLM_SMALL = {"cd-cca": _CDCCA, "pkd": _CDCCA, "cwd": _CDCCA, "cotta": {"n_augment": 2}, "tent": {}}
#: every built-in method (tests register toy methods of their own, e.g. tests/toy_service.py)
BUILTIN = [n for n in registry.available() if registry.get(n).__module__.startswith(("paramcast.methods.", "paramcast.baselines."))]
MLLM = sorted(n for n in BUILTIN if issubclass(registry.get(n), MLLMSourceOnly))
VIDEOQA = sorted(set(BUILTIN) - set(MLLM))


def _create(name, enc, V):
    return registry.create(name, num_answers=V, feature_dim=enc.hidden, encoder=enc, device="cpu", seed=0,
                           **SMALL.get(name, {}))


def test_every_method_is_in_one_matrix():
    assert len(MLLM) == 6 and len(VIDEOQA) == 7, (MLLM, VIDEOQA)


def _params(obj):
    mods = {k: v for k, v in vars(obj).items() if isinstance(v, torch.nn.Module)}
    return {f"{k}.{n}": p.detach().clone() for k, m in mods.items() for n, p in m.state_dict().items()}


@pytest.mark.parametrize("name", VIDEOQA)
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


@pytest.mark.parametrize("name", VIDEOQA)
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


class _Scaled(torch.nn.Module):
    """A trainable objective: the QA cross-entropy of ``scale * outputs``; records every call's shapes."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, outputs, data, rows):
        self.calls.append((tuple(outputs.shape), tuple(rows.shape), torch.is_grad_enabled()))
        return ANSWER_CE(outputs * self.scale, data, rows)


@pytest.mark.parametrize("name", VIDEOQA)
def test_a_bench_trains_every_method_against_its_own_objective(name, tiny_encoder_and_data, tmp_path):
    """Method.set_objective: the output layer trains against it in fit (its parameters with the method's)
    and in device-side adaptation; it is the task's, not part of the checkpoint."""
    enc, fs, voc = tiny_encoder_and_data
    V = len(voc.answers)
    m = _create(name, enc, V)
    obj = _Scaled()
    m.set_objective(obj)
    m.fit(fs)
    assert obj.calls and all(o[:-1] == r and o[-1] == V and grad for o, r, grad in obj.calls), obj.calls[:3]
    assert obj.scale.item() != 1.0                                      # trained with the method in the cloud
    assert "objective" not in m.modules()
    again = registry.from_checkpoint(m.save_checkpoint(tmp_path / "m.safetensors"), encoder=enc, device="cpu")
    assert again.objective is ANSWER_CE
    n_fit = len(obj.calls)
    obj.requires_grad_(False)                                           # the caller freezes it for the device
    m.device_step(fs.subset(fs.device == 1))
    assert (len(obj.calls) > n_fit) == (name in ("f-linear", "fine-tuning"))  # device-side training uses it too


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


# --- the MLLM methods (CD-CCA and the baselines of its tables) ------------------------------------
@pytest.fixture(scope="module")
def mllm_data():
    from cd_cca.conftest import tiny_pretrain_config
    from cd_cca.synth import synth_clips, synth_vocab

    voc = synth_vocab()
    source = synth_clips(16, voc, size=32)
    cfg = tiny_pretrain_config()
    shapes = mllm_shapes(source, voc, cfg)
    pretrain = {k: v for k, v in vars(cfg).items() if k not in ("teacher", "student")}
    return shapes, pretrain, source, synth_clips(12, voc, seed=1, size=32), synth_clips(8, voc, seed=2, size=32)


def _create_mllm(name, mllm_data):
    shapes, pretrain, source, _, _ = mllm_data
    m = registry.create(name, **shapes, pretrain=pretrain, device="cpu", seed=0, **MLLM_SMALL.get(name, {}))
    m.fit(source)
    return m


def _adapter_state(m):
    return {k: v.detach().clone() for k, v in m.model.state_dict().items()}


@pytest.mark.parametrize("name", MLLM)
def test_mllm_method_matrix(name, mllm_data):
    _, _, _, stream, rest = mllm_data
    m = _create_mllm(name, mllm_data)
    m.reset()
    A = m.pre.student.layout.n_answers
    before, state = m.predict(rest), _adapter_state(m)
    assert before.shape == (len(rest), A) and torch.isfinite(before).all()
    teacher = {k: v.clone() for k, v in m.pre.teacher.state_dict().items()}
    with pytest.raises(NotImplementedError, match="own loss"):  # an MLLM trains its own losses only
        m.set_objective(ANSWER_CE)

    upload = m.device_step(stream)  # raw clips: the method encodes them with the shared encoder
    if m.collaborative:
        assert isinstance(upload, Upload) and upload.text is not None and upload.positions is not None
        received = wire.decode(wire.encode(upload), expect=Upload)  # what the device sends is a wire payload
        update = m.cloud_step(received)
        assert isinstance(update, WeightDelta) and update.deltas and update.base_version == "v0"
        m.apply(wire.decode(wire.encode(update)))
    else:
        assert upload is None
    after = m.predict(rest)
    assert after.shape == (len(rest), A) and torch.isfinite(after).all()
    changed = {k for k, v in _adapter_state(m).items() if not torch.equal(v, state[k])}
    if name == "mllm-source-only":
        assert not changed and torch.equal(after, before)
    else:  # TTA adapts on the device, the collaborative methods install the cloud's delta
        assert changed and not torch.allclose(after, before)
    assert all(torch.equal(v, teacher[k]) for k, v in m.pre.teacher.state_dict().items())  # the teacher never moves

    m.reset()
    torch.testing.assert_close(m.predict(rest), before)


@pytest.mark.parametrize("name", MLLM)
def test_mllm_checkpoint_round_trip(name, mllm_data, tmp_path):
    """safetensors + constructor arguments rebuild the fitted system: same answers, same upload."""
    _, _, _, stream, rest = mllm_data
    m = _create_mllm(name, mllm_data)
    path = m.save_checkpoint(tmp_path / f"{name}.safetensors")
    again = registry.from_checkpoint(path, device="cpu")
    assert type(again) is type(m) and again.config == m.config
    torch.testing.assert_close(again.predict(rest), m.predict(rest))
    if m.collaborative:
        torch.manual_seed(0)
        a = m.device_step(stream)
        torch.manual_seed(0)
        b = again.device_step(stream)
        assert torch.equal(a.features, b.features) and torch.equal(a.text, b.text)
