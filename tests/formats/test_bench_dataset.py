"""The video-QA benchmark on a real dataset's layout: tiny MSRVTT-QA files end to end (one device per video)."""

from __future__ import annotations

import json

import pytest
import torch
from formats_media import write_json

from paramcast.bench.videoqa import VideoQABenchConfig, run_videoqa
from paramcast.data.formats import DatasetLayoutError, load_videoqa_benchmark

SMALL = {
    "source-only": dict(head_hidden=8),
    "cdc-mmpg": dict(head_hidden=8, proj_dim=8, hyper_hidden=8, latent_dim=4, vae_hidden=16, group_size=4,
                     groups_per_step=4, batch_size=16, delta_init_std=0.1),
}
# Two questions per video in val and test, so each video keeps one evaluated question after its shot.
EVAL_QA = [("what is the man doing?", "dance", 0), ("who is on the stage?", "man", 0),
           ("what animal is it?", "dog", 1), ("how many dogs?", "two", 1), ("what does the dog do?", "run", 1)]


@pytest.fixture
def msrvtt_bench_root(msrvtt_root):
    for split in ("val", "test"):
        write_json(msrvtt_root / f"{split}_qa.json", [{"question": q, "answer": a, "video_id": v, "category_id": v * 3,
                                                       "id": i} for i, (q, a, v) in enumerate(EVAL_QA)])
    return msrvtt_root


def test_unseen_val_answer_and_category_become_ignore_and_are_counted(msrvtt_root, capsys):
    """A val/test row whose answer and category_id the training split never had: IGNORE, counted, no KeyError."""
    from paramcast.data.base import IGNORE
    from paramcast.data.formats import read_annotations

    val = [("what is the man doing?", "dance", 0, 0), ("what animal is it?", "zebra", 1, 17),
           ("who is on the stage?", "man", 0, 17), ("how many dogs?", "two", 1, 3)]
    for split in ("val", "test"):
        write_json(msrvtt_root / f"{split}_qa.json", [{"question": q, "answer": a, "video_id": v, "category_id": c,
                                                       "id": i} for i, (q, a, v, c) in enumerate(val)])
    train_vocab = read_annotations("msrvtt-qa", msrvtt_root, "train").vocab
    assert train_vocab.categories == ["0", "3"]
    rows = read_annotations("msrvtt-qa", msrvtt_root, "val", vocab=train_vocab).rows
    assert rows.category.tolist() == [0, IGNORE, IGNORE, 1]
    assert rows.answer.tolist() == [train_vocab.answers.index("dance"), IGNORE, train_vocab.answers.index("man"),
                                    train_vocab.answers.index("two")]
    assert rows.meta["unseen"] == {"rows": 4, "answers": 1, "categories": {"17": 2}, "qtypes": {}}
    assert "'17' x2" in capsys.readouterr().err
    assert train_vocab.categories == ["0", "3"]                               # the reused vocabulary is not changed
    ds = load_videoqa_benchmark("msrvtt-qa", msrvtt_root, frames=2, size=8)   # reuses train's vocabulary
    assert ds.new.category.tolist() == [0, IGNORE, IGNORE, 1] and ds.new.answer[1] == IGNORE
    assert ds.unseen.meta["unseen"]["categories"] == {"17": 2}
    assert ds.history.meta["unseen"] == {"rows": 5, "answers": 0, "categories": {}, "qtypes": {}}


def _config(root, tmp_path, **kw) -> VideoQABenchConfig:
    base = dict(dataset="msrvtt-qa", data_root=str(root), frames=4, image_size=16, k=16,
                methods=["source-only", "cdc-mmpg"], method_overrides=SMALL, epochs=1, adr_epochs=1, pretrain_epochs=1,
                fusion_layers=1, timing_repeats=1, profiles=["5G-100"], cache_root=str(tmp_path / "cache"),
                device="cpu", progress=False)
    return VideoQABenchConfig(**(base | kw))


def test_devices_are_videos_numbered_across_splits(msrvtt_bench_root):
    ds = load_videoqa_benchmark("msrvtt-qa", msrvtt_bench_root, frames=2, size=8)
    assert ds.splits == {"history": "train", "new": "val", "unseen": "test"}
    assert ds.vocab.devices == ["train/video0", "train/video1", "val/video0", "val/video1", "test/video0",
                                "test/video1"]
    assert ds.history.device.tolist() == [0, 1, 0, 1, 1]                       # QA_TRAIN's videos
    assert ds.new.device.tolist() == [2, 2, 3, 3, 3] and ds.unseen.device.tolist() == [4, 4, 5, 5, 5]
    again = load_videoqa_benchmark("msrvtt-qa", msrvtt_bench_root, frames=2, size=8, limit=3)
    assert again.fingerprint != ds.fingerprint and len(again.unseen) == 3


def test_run_videoqa_on_msrvtt_qa_layout(msrvtt_bench_root, tmp_path):
    result = run_videoqa(_config(msrvtt_bench_root, tmp_path))
    json.dumps(result)                                                          # JSON-able
    ds = result["dataset"]
    assert ds["name"] == "msrvtt-qa" and ds["device"] == "video"
    assert ds["splits"] == {"history": "train", "new": "val", "unseen": "test"}
    assert ds["rows"] == {"history": 5, "new": 5, "unseen": 5} and ds["unseen_devices"] == 2
    for name in ("source-only", "cdc-mmpg"):
        for split in ("new", "unseen"):
            acc = result["methods"][name]["accuracy"][split]
            # k=16 leaves one question of each video: video0 (2 q) -> 1 row, video1 (3 q) -> 1 row
            assert acc["rows"] == 2 and len(acc["per_device"]) == 2
            assert 0.0 <= acc["filtered"] <= 1.0
    ours = result["methods"]["cdc-mmpg"]
    assert ours["bytes_up"] > 0 and ours["bytes_down"] == (8 + 1) * ds["num_answers"] * 4


def test_caches_keep_datasets_apart(msrvtt_bench_root, tmp_path):
    from paramcast.bench.videoqa import prepare

    quick = dict(methods=["source-only"], method_overrides={}, pretrain_epochs=0)    # caching only: no training
    full = prepare(_config(msrvtt_bench_root, tmp_path, **quick))
    part = prepare(_config(msrvtt_bench_root, tmp_path, **quick, limit=4))
    assert full.pretrain_log["path"] != part.pretrain_log["path"]
    assert len(part.features["unseen"]) == 4 and len(full.features["unseen"]) == 5
    again = prepare(_config(msrvtt_bench_root, tmp_path, **quick))
    assert again.pretrain_log["cached"] is True
    assert torch.equal(again.features["unseen"].features, full.features["unseen"].features)


def test_wrong_layout_names_the_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"train_qa\.json") as e:
        run_videoqa(_config(tmp_path / "empty", tmp_path))
    assert "docs/datasets.md" in str(e.value)


def test_config_errors_are_listed_together():
    with pytest.raises(ValueError) as e:
        VideoQABenchConfig(dataset="kinetics", image_size=20)
    msg = str(e.value)
    assert "unknown" in msg and "msrvtt-qa" in msg and "needs data_root" in msg and "image_size=20" in msg
    with pytest.raises(ValueError, match="is a vqa dataset"):
        VideoQABenchConfig(dataset="vqav2", data_root="/data/vqav2")


def _yaml(tmp_path) -> str:
    """A tiny-budget benchmark config; the dataset comes from the command line."""
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"task": "videoqa", "frames": 4, "image_size": 16, "epochs": 1, "adr_epochs": 1,
                                    "pretrain_epochs": 1, "fusion_layers": 1, "timing_repeats": 1,
                                    "profiles": ["5G-100"], "progress": False, "cache_root": str(tmp_path / "cache"),
                                    "methods": list(SMALL), "method_overrides": SMALL}))
    return str(path)


def test_cli_bench_and_train_take_dataset_and_data_root(msrvtt_bench_root, tmp_path):
    from typer.testing import CliRunner

    from paramcast.cli.main import app

    data = ["--dataset", "msrvtt-qa", "--data-root", str(msrvtt_bench_root), "--config", _yaml(tmp_path),
            "--device", "cpu"]
    res = CliRunner().invoke(app, ["bench", "videoqa", *data, "--out", str(tmp_path / "res" / "msrvtt")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "res" / "msrvtt.json").read_text())
    assert result["dataset"]["name"] == "msrvtt-qa" and set(result["methods"]) == set(SMALL)
    res = CliRunner().invoke(app, ["train", "--method", "source-only", *data, "--out", str(tmp_path / "train")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "train" / "checkpoint.safetensors").is_file()
    assert "--device-index 2" in res.output                                     # val/video0: the first val video
