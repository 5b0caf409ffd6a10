"""Decoding real videos into the clip store: parallel, resumable, corrupt files skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("av")

from formats_media import write_clip, write_json  # noqa: E402

from paramcast.data.formats import read_annotations  # noqa: E402
from paramcast.data.store import ClipView  # noqa: E402


def _root(tmp_path: Path, videos: int = 6, per_video: int = 4) -> Path:
    root = tmp_path / "msrvtt"
    rows = [{"question": f"what is thing {q}?", "answer": f"a{q % 3}", "video_id": v, "category_id": 0,
             "id": v * per_video + q} for v in range(videos) for q in range(per_video)]
    for split in ("train", "val", "test"):
        write_json(root / f"{split}_qa.json", rows)
    for v in range(videos):
        write_clip(root / "videos" / "all" / f"video{v}.mp4", shift=v)
    return root


def _files(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir())}


def test_each_clip_decoded_once_into_a_mapped_store(tmp_path):
    ann = read_annotations("msrvtt-qa", _root(tmp_path), split="train")
    clips = ann.decode(frames=4, size=16, cache_dir=tmp_path / "cache", workers=2)
    assert isinstance(clips.frames, ClipView) and clips.frames.mapping is not None
    assert clips.frames.shape == (24, 4, 16, 16, 3) and clips.frames.store.shape[0] == 6
    store = next((tmp_path / "cache").glob("*.clips.npy"))
    assert store.stat().st_size < 6 * 4 * 16 * 16 * 3 + 200                    # 6 clips, not 24 rows
    for r in (0, 5, 23):
        assert torch.equal(clips.frames[r], torch.from_numpy(ann.clip_frames(int(clips.clip_id[r]), 4, 16)))
    assert clips.meta["skipped"] == []


def test_corrupt_video_is_skipped_and_reported(tmp_path, capsys):
    root = _root(tmp_path)
    (root / "videos" / "all" / "video2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    ann = read_annotations("msrvtt-qa", root, split="train")
    clips = ann.decode(frames=4, size=16, cache_dir=tmp_path / "cache", workers=2)
    assert len(clips) == 20 and 2 not in clips.clip_id.tolist()                # its 4 rows are dropped
    (skip,) = clips.meta["skipped"]
    assert skip["clip"] == "video2" and skip["path"].endswith("video2.mp4") and skip["error"]
    assert "skipped 1 undecodable video(s) (4 rows): video2" in capsys.readouterr().err
    report = json.loads(next((tmp_path / "cache").glob("*.done.json")).read_text())
    assert report["clips"] == 6 and [s["pos"] for s in report["skipped"]] == [2]
    again = ann.decode(frames=4, size=16, cache_dir=tmp_path / "cache")        # from the complete store
    assert torch.equal(again.frames[:], clips.frames[:]) and again.meta["skipped"] == clips.meta["skipped"]


def test_resume_after_interruption_gives_identical_files(tmp_path, monkeypatch):
    root = _root(tmp_path)
    (root / "videos" / "all" / "video4.mp4").write_bytes(b"garbage")            # a failure is resumed too
    ann = read_annotations("msrvtt-qa", root, split="train")
    ann.decode(frames=4, size=16, cache_dir=tmp_path / "whole", workers=1)

    import paramcast.data.video as video

    real, calls = video.read_video, {"n": 0}

    def interrupted(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt                                              # the user stops the prepare
        return real(*a, **kw)

    monkeypatch.setattr(video, "read_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ann.decode(frames=4, size=16, cache_dir=tmp_path / "resumed", workers=1)
    state = next((tmp_path / "resumed").glob("*.state.npy"))
    assert np.load(state).tolist() == [1, 1, 1, 0, 0, 0]                         # stopped at the 4th clip
    assert not list((tmp_path / "resumed").glob("*.done.json"))     # not marked complete
    monkeypatch.setattr(video, "read_video", real)
    decoded = []
    monkeypatch.setattr(video, "read_video", lambda p, *a, **kw: decoded.append(Path(p).name) or real(p, *a, **kw))
    clips = ann.decode(frames=4, size=16, cache_dir=tmp_path / "resumed", workers=1)
    assert decoded == ["video3.mp4", "video4.mp4", "video5.mp4"]                # only what was left
    assert _files(tmp_path / "resumed") == _files(tmp_path / "whole")           # byte for byte
    assert [s["clip"] for s in clips.meta["skipped"]] == ["video4"]
