"""The per-clip store: each clip's frames once on disk, memory-mapped, rows pointing at clips."""

from __future__ import annotations

import numpy as np
import torch

from paramcast.data.base import ClipSet
from paramcast.data.store import ClipView, NpyWriter, open_npy


def _clipset(clips: int = 5, per_clip: int = 24, t: int = 3, size: int = 8, seed: int = 0) -> ClipSet:
    """``per_clip`` questions per clip, frames repeated per row (the old in-memory layout)."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (clips, t, size, size, 3), generator=g, dtype=torch.uint8)
    clip_id = torch.arange(clips).repeat_interleave(per_clip)
    n = len(clip_id)
    return ClipSet(frames=video[clip_id], question=torch.randint(0, 900, (n, 20), generator=g),
                   answer=torch.randint(-1, 50, (n,), generator=g), answer_text=[f"a{i}" for i in range(n)],
                   candidates=torch.randint(0, 60, (n, 5), generator=g), mc_label=torch.randint(0, 5, (n,), generator=g),
                   caption=torch.randint(0, 900, (n, 40), generator=g), device=clip_id % 3,
                   category=torch.randint(0, 7, (n,), generator=g), qtype=torch.randint(0, 6, (n,), generator=g),
                   clip_id=clip_id, meta={"split": "test"})


def test_many_questions_per_clip_store_each_clip_once(tmp_path):
    cs = _clipset(clips=5, per_clip=24, size=32)
    cs.save(tmp_path / "test.safetensors")
    frame_bytes = 3 * 32 * 32 * 3
    store = tmp_path / "test.clips.npy"
    header = len(open(store, "rb").read(128).split(b"\n")[0]) + 1
    assert store.stat().st_size == header + 5 * frame_bytes                       # 5 clips, not 120 rows
    rows_file = (tmp_path / "test.safetensors").stat().st_size
    assert rows_file + store.stat().st_size < len(cs) * frame_bytes / 4           # vs one copy per row


def test_mmap_reads_equal_the_in_memory_rows(tmp_path):
    cs = _clipset()
    cs.save(tmp_path / "s.safetensors")
    back = ClipSet.load(tmp_path / "s.safetensors")
    assert isinstance(back.frames, ClipView) and back.frames.shape == cs.frames.shape
    assert back.frames.mapping is not None                                        # memory-mapped, not read
    assert torch.equal(back.frames[:], cs.frames)
    for name in cs._TENSORS[1:]:
        assert getattr(back, name).dtype == torch.int64 and torch.equal(getattr(back, name), getattr(cs, name))
    assert back.answer_text == cs.answer_text and back.meta == cs.meta
    mask = cs.device == 1
    assert torch.equal(back.frames[mask], cs.frames[mask])
    assert torch.equal(back.frames[7], cs.frames[7]) and torch.equal(back.frames[3:40], cs.frames[3:40])
    middle = back.frames[:, 1]                                                    # every row, one frame:
    assert isinstance(middle, ClipView) and middle.store.shape[0] == 5            # still one entry per clip
    assert torch.equal(middle[:], cs.frames[:, 1]) and torch.equal(back.frames[:, [0, 2]][4], cs.frames[4, [0, 2]])
    assert torch.equal(back.frames[:, 1].contiguous(), cs.frames[:, 1])          # tensor methods materialise
    assert torch.equal(back.frames[mask, :, ::2], cs.frames[mask][:, :, ::2])
    idx = torch.tensor([100, 3, 3, 57])
    sub = back.subset(idx)
    assert isinstance(sub.frames, ClipView) and torch.equal(sub.frames[:], cs.frames[idx])
    assert torch.equal(back.frames, cs.frames)                                    # torch functions materialise
    back.frames.release()                                                         # dropping pages keeps the data
    assert torch.equal(back.frames[:], cs.frames)


def test_distinct_frames_under_one_clip_id_are_kept_per_row(tmp_path):
    cs = _clipset(clips=2, per_clip=3)
    cs.frames = cs.frames.clone()
    cs.frames[1] = 0                                                              # row 1 differs from row 0
    cs.save(tmp_path / "s.safetensors")
    back = ClipSet.load(tmp_path / "s.safetensors")
    assert back.frames.store.shape[0] == 6 and torch.equal(back.frames[:], cs.frames)


def test_npy_writer_rows_match_numpy(tmp_path):
    a = np.arange(4 * 6, dtype=np.float16).reshape(4, 2, 3)
    with NpyWriter(tmp_path / "a.npy", a.shape, a.dtype) as w:
        w.write(2, a[2:])
        w.write(0, a[0])
        w.write(1, a[1])
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)
    with NpyWriter(tmp_path / "a.npy", a.shape, a.dtype) as w:                  # reopened: kept as is
        assert not w.created
    t, _ = open_npy(tmp_path / "a.npy")
    assert torch.equal(t, torch.from_numpy(a))
