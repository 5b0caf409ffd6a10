"""The MSRVTT-QA-shaped generator and the data-scale pipeline, at a few videos (no timing asserted)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("av")

from paramcast.data.formats import read_annotations  # noqa: E402
from paramcast.data.formats.synthetic import write_msrvtt_qa_like  # noqa: E402


def test_generator_writes_the_release_layout(tmp_path):
    summary = write_msrvtt_qa_like(tmp_path / "a", scale=0.0005, workers=1)
    assert summary == {"train": {"videos": 3, "questions": 79}, "val": {"videos": 2, "questions": 6},
                       "test": {"videos": 2, "questions": 36}}
    rows = json.loads((tmp_path / "a" / "train_qa.json").read_text())
    assert set(rows[0]) == {"answer", "category_id", "id", "question", "video_id"}
    assert [r["id"] for r in rows] == list(range(79)) and {r["video_id"] for r in rows} == {0, 1, 2}
    test = json.loads((tmp_path / "a" / "test_qa.json").read_text())
    assert {r["video_id"] for r in test} == {5, 6}                              # ids continue across splits
    ann = read_annotations("msrvtt-qa", tmp_path / "a", split="test")
    clips = ann.decode(frames=3, size=32)
    assert clips.frames.shape == (36, 3, 32, 32, 3) and clips.frames.store.shape[0] == 2
    assert int(clips.frames[:].float().std()) > 10                              # real pictures, not blank
    write_msrvtt_qa_like(tmp_path / "b", scale=0.0005, workers=1)
    for f in ("train_qa.json", "val_qa.json", "test_qa.json"):                  # same seed, same bytes
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_data_scale_pipeline_runs_every_stage(tmp_path):
    from paramcast.bench.data_scale import DataScaleConfig, generate, markdown, run_scale

    cfg = DataScaleConfig(scale=0.0005, root=str(tmp_path), size=32, workers=1, pretrain_rows=8, fuse_rows=10)
    generate(cfg)
    r = run_scale(cfg)
    assert list(r["stages"]) == ["annotations", "decode", "backbone", "pretrain", "fuse", "answer"]
    assert r["questions"] == {"train": 79, "val": 6, "test": 36} and r["videos"] == {"train": 3, "val": 2, "test": 2}
    assert r["fused_rows"] == {"train": 10, "val": 6, "test": 10} and r["skipped_videos"] == 0
    frames = 7 * 3 * 32 * 32 * 3                                                # 7 videos, stored once
    assert frames <= r["disk_bytes"]["clip_store"] < 2 * frames + 3 * 8192
    assert r["disk_bytes"]["backbone_cache"] > 0 and r["peak_rss_mb"] > 0
    md = markdown({"config": {}, "runs": [{**r, "generate_seconds": 0.0}]})
    assert "| 0.0005 | 7 | 121 |" in md


def test_data_scale_smallest_run_on_cuda_matches_cpu(tmp_path):
    """``--device cuda``: every stage runs with the backbone and fusion on the GPU, same store, same backbone output."""
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from paramcast.bench.data_scale import DataScaleConfig, generate, run_scale

    runs = {}
    for dev in ("cpu", "cuda"):
        cfg = DataScaleConfig(scale=0.0005, root=str(tmp_path / dev), size=32, workers=1, pretrain_rows=8,
                              fuse_rows=10, device=dev)
        generate(cfg)
        runs[dev] = (run_scale(cfg), tmp_path / dev / "scale-0.0005" / "cache")
    (cpu, cpu_dir), (gpu, gpu_dir) = runs["cpu"], runs["cuda"]
    assert gpu["device"] == "cuda" and list(gpu["stages"]) == list(cpu["stages"])
    assert gpu["questions"] == cpu["questions"] and gpu["fused_rows"] == cpu["fused_rows"]
    assert 0.0 <= gpu["test_accuracy_fused_rows"] <= 1.0
    stores = [sorted((d / "clips").glob("*.clips.npy")) for d in (cpu_dir, gpu_dir)]   # test, train, val
    assert len(stores[0]) == len(stores[1]) == 3
    for a, b in zip(*stores, strict=True):                     # decoding is the same
        assert a.name.split("-")[:3] == b.name.split("-")[:3] and a.read_bytes() == b.read_bytes()
    stems = [sorted((d / "stem").glob("*.npy")) for d in (cpu_dir, gpu_dir)]
    assert len(stems[0]) == len(stems[1]) == 3
    for a, b in zip(*stems, strict=True):     # the backbone ran on the GPU (TF32 convolutions): close, not equal
        x, y = (torch.from_numpy(np.load(p).astype(np.float32)) for p in (a, b))
        assert x.shape == y.shape and float((x - y).norm() / x.norm()) < 0.02
