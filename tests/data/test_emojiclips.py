"""EmojiClips: determinism, device differences, vocabulary rules, config validation, caching.

Uses the procedural ``shapes`` source and the tiny preset, so no OS package is needed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from paramcast.data.base import IGNORE, ClipSet
from paramcast.data.emojiclips import PRESETS, AssetsMissing, EmojiClips, EmojiClipsConfig, load
from paramcast.data.emojiclips import dataset as dataset_mod

HASHED = ("history.safetensors", "new.safetensors", "unseen.safetensors", "vocab.json", "devices.json")


def _hashes(ds: EmojiClips) -> dict[str, str]:
    return {f: hashlib.sha256((ds.path / f).read_bytes()).hexdigest() for f in HASHED}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> EmojiClips:
    return load("tiny", source="shapes", seed=0, root=tmp_path_factory.mktemp("ec"), progress=False)


def test_splits_have_the_clipset_layout(tiny):
    c = tiny.config
    assert len(tiny.history) == c.n_train_devices * c.history_clips * c.questions_per_clip
    assert len(tiny.new) == c.n_train_devices * c.new_clips * c.questions_per_clip
    assert len(tiny.unseen) == c.n_unseen_devices * c.unseen_clips * c.questions_per_clip
    for cs in (tiny.history, tiny.new, tiny.unseen):
        assert isinstance(cs, ClipSet)
        assert cs.frames.dtype == torch.uint8 and cs.frames.shape[1:] == (c.frames, c.size, c.size, 3)
        assert cs.question.shape == (len(cs), c.question_len) and (cs.question[:, 0] == 1).all()  # [CLS]
        assert cs.caption.shape == (len(cs), c.caption_len)
        assert cs.candidates.shape == (len(cs), 5) and len(cs.answer_text) == len(cs)
        assert cs.qtype.max() < len(tiny.vocab.qtypes) and cs.category.max() < len(tiny.vocab.categories)
    assert tiny.vocab.words[:4] == ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    train = {i for i, d in enumerate(tiny.devices) if d["split"] == "train"}
    assert set(tiny.history.device.tolist()) == train == set(tiny.new.device.tolist())
    assert not set(tiny.unseen.device.tolist()) & train
    assert not set(tiny.history.clip_id.tolist()) & set(tiny.new.clip_id.tolist())


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = load("tiny", source="shapes", seed=0, root=tmp_path / "a", progress=False)
    assert not again.from_cache and _hashes(again) == _hashes(tiny)
    other = load("tiny", source="shapes", seed=1, root=tmp_path / "b", progress=False)
    assert _hashes(other)["history.safetensors"] != _hashes(tiny)["history.safetensors"]
    assert not torch.equal(other.history.frames, tiny.history.frames)


def test_worker_count_does_not_change_bytes(tiny, tmp_path):
    two = load("tiny", source="shapes", seed=0, root=tmp_path, progress=False, workers=2)
    assert _hashes(two) == _hashes(tiny)


def test_devices_differ_in_pixels_and_labels(tiny):
    h = tiny.history
    n_dev = int(h.device.max()) + 1

    def stats(x: torch.Tensor) -> torch.Tensor:  # (N, T, H, W, 3) → mean RGB, std RGB, sharpness+noise
        x = x.double()
        return torch.cat([x.mean((0, 1, 2, 3)), x.std((0, 1, 2, 3)),
                          (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean((0, 1, 2, 3))])

    feats = torch.stack([stats(h.frames[h.device == d]) for d in range(n_dev)])  # (D, 9)
    gaps = torch.cdist(feats, feats)[~torch.eye(n_dev, dtype=torch.bool)]
    assert gaps.min() > 3.0, f"pixel statistics of two devices nearly coincide: {feats}"
    # chi-square homogeneity of the category × device table: identical devices would give ~dof
    table = torch.stack([torch.bincount(h.category[h.device == d], minlength=len(tiny.vocab.categories))
                         for d in range(n_dev)]).double()
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    assert chi2 > 3 * dof, f"category mixes of the devices look identical (chi2={chi2:.1f}, dof={dof})"
    qt = torch.stack([torch.bincount(h.qtype[h.device == d], minlength=len(tiny.vocab.qtypes))
                      for d in range(n_dev)]).double()
    assert (qt / qt.sum(1, keepdim=True)).std(0).max() > 0.05


def test_unseen_devices_hold_out_factor_combinations(tiny):
    train = [d for d in tiny.devices if d["split"] == "train"]
    for d in (d for d in tiny.devices if d["split"] == "unseen"):
        assert (d["style"], d["background"]) not in {(t["style"], t["background"]) for t in train}
        assert d["camera"]["name"] not in {t["camera"]["name"] for t in train}


def test_answer_vocabulary_and_candidates(tiny):
    v = tiny.vocab
    assert v.mc_answers[: len(v.answers)] == v.answers
    for cs in (tiny.history, tiny.new, tiny.unseen):
        in_vocab = torch.tensor([a in set(v.answers) for a in cs.answer_text])
        assert ((cs.answer == IGNORE) == ~in_vocab).all()  # IGNORE exactly for out-of-vocabulary answers
        ok = cs.answer >= 0
        assert all(v.answers[i] == t for i, t in zip(cs.answer[ok].tolist(), np.array(cs.answer_text)[ok.numpy()], strict=True))
        for row in range(len(cs)):
            cands = [v.mc_answers[i] for i in cs.candidates[row].tolist()]
            assert cands.count(cs.answer_text[row]) == 1 and cands[int(cs.mc_label[row])] == cs.answer_text[row]
            assert len(set(cands)) == 5
    # history answers are ranked by frequency
    counts = [cs_count for cs_count in torch.bincount(tiny.history.answer[tiny.history.answer >= 0]).tolist()]
    assert counts == sorted(counts, reverse=True)


def test_small_answer_vocab_marks_rare_answers_ignore(tmp_path):
    cfg = PRESETS["tiny"].replace(answer_vocab=10, history_clips=20, new_clips=5, unseen_clips=5)
    ds = load(cfg, root=tmp_path, progress=False)
    assert len(ds.vocab.answers) == 10
    assert (ds.history.answer == IGNORE).any() and (ds.history.answer < 10).all()


def test_cache_reloads_without_rebuilding(tiny, monkeypatch):
    stamp = {f: os.stat(tiny.path / f).st_mtime_ns for f in HASHED}
    monkeypatch.setattr(dataset_mod, "_build", lambda *a, **k: pytest.fail("rebuilt a cached dataset"))
    again = load("tiny", source="shapes", seed=0, root=tiny.path.parents[1], progress=False)
    assert again.from_cache and stamp == {f: os.stat(tiny.path / f).st_mtime_ns for f in HASHED}
    assert torch.equal(again.history.frames, tiny.history.frames) and again.vocab == tiny.vocab
    assert again.history.answer_text == tiny.history.answer_text


@pytest.mark.parametrize("change, match", [
    (dict(source="png"), "source"), (dict(n_unseen_devices=0), "unseen"), (dict(history_clips=0), "history_clips"),
    (dict(size=30), "multiple of 8"), (dict(sprite_sizes=(40,)), "sprite_sizes"), (dict(max_sprites=5), "max_sprites"),
    (dict(questions_per_clip=4), "questions_per_clip"), (dict(category_alpha=0.0), "alpha"),
])
def test_config_errors_say_how_to_fix(change, match):
    with pytest.raises(ValueError, match=match):
        PRESETS["tiny"].replace(**change)


def test_unknown_preset_and_missing_assets(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown preset"):
        load("huge", root=tmp_path)
    from paramcast.data.emojiclips import _assets

    monkeypatch.setattr(_assets, "_find_fonts", lambda: (None, None))
    monkeypatch.setattr(_assets, "_find_gemojione", lambda root: None)
    with pytest.raises(AssetsMissing, match="apt-get download ruby-gemojione"):
        load("tiny", source="emoji", root=tmp_path, progress=False)


def test_presets_meet_their_promises():
    s, q, t = PRESETS["standard"], PRESETS["quick"], PRESETS["tiny"]
    assert s.source == "emoji" and s.n_train_devices >= 16 and s.n_unseen_devices >= 4
    assert s.n_train_devices * s.history_clips * s.questions_per_clip >= 20_000 and s.answer_vocab >= 300
    assert (s.frames, s.size) == (8, 64) and (q.frames, q.size) == (8, 64)
    assert isinstance(t, EmojiClipsConfig) and t.source == "shapes" == q.source


def test_cli_card_and_contact_sheet(tmp_path):
    from typer.testing import CliRunner

    from paramcast.cli.main import app

    runner = CliRunner()
    for cmd in (["data", "card"], ["data", "show"]):
        res = runner.invoke(app, [*cmd, "--preset", "tiny", "--source", "shapes", "--root", str(tmp_path)])
        assert res.exit_code == 0, res.output
    card = (tmp_path / "tiny" / "card.md").read_text()
    assert "## What is real" in card and "## Devices" in card and "unseen0" in card
    from PIL import Image

    assert Image.open(tmp_path / "tiny" / "contact_sheet.png").size[0] > 8 * 32
    res = runner.invoke(app, ["data", "prepare", "--preset", "nope", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "unknown preset" in res.output


@pytest.mark.slow
def test_standard_preset_with_real_emoji(tmp_path_factory):
    from paramcast.data.emojiclips._assets import find_assets
    from paramcast.data.emojiclips.dataset import data_root

    root = Path(os.environ.get("PARAMCAST_DATA") or data_root())
    try:
        find_assets(root)
    except AssetsMissing as exc:
        pytest.skip(f"emoji assets missing (run `paramcast data prepare --preset standard`): {exc}")
    ds = load("standard", root=root, progress=False)
    assert len(ds.vocab.devices) >= 20 and len(ds.history) >= 20_000 and len(ds.vocab.answers) >= 300
    assert ds.info["n_sprites"] >= 1000 and len(ds.vocab.styles) == 3
    assert ds.history.frames.shape[1:] == (8, 64, 64, 3)
