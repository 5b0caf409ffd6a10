"""An MSRVTT-QA-shaped dataset on disk, at any fraction of the real size: the scale benchmark's input.

``write_msrvtt_qa_like(root, scale)`` writes what :func:`~paramcast.data.formats.read_msrvtt_qa`
reads from a real MSRVTT-QA root: ``{train,val,test}_qa.json`` (JSON lists of ``{"answer",
"category_id", "id", "question", "video_id"}``, the release's layout) and ``videos/all/videoN.mp4``
(H.264 via PyAV). At ``scale=1`` the counts are MSRVTT-QA's: 6,513 / 497 / 2,990 videos (video ids
0–6512 train, 6513–7009 val, 7010–9999 test, as in MSR-VTT) and 158,581 / 12,278 / 72,821 questions
(~24.4 per video); a fraction keeps the ratios.

What is *not* real, decided here: the clips are 24 frames at 8 fps (3 s; MSR-VTT's are 10–30 s at
~30 fps), 320×240, two coloured squares moving over a gradient whose hue follows the video's category,
so decoding costs less per clip than on the real files (the benchmark reports seconds per clip, which
scale with clip length). Questions are wh-templates over a Zipf-distributed vocabulary of 6,000
made-up words, answers Zipf over 4,000 (MSRVTT-QA has ~4,000 distinct answers; the readers keep the
top 1,500). Same ``seed`` and ``scale`` → byte-identical JSON; videos are deterministic in content.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

__all__ = ["MSRVTT_QA_SIZE", "write_msrvtt_qa_like"]

#: split -> (videos, questions) of the real MSRVTT-QA (Xu et al., MM 2017).
MSRVTT_QA_SIZE = {"train": (6513, 158581), "val": (497, 12278), "test": (2990, 72821)}
_WH = (("what", 0.68), ("who", 0.24), ("how", 0.05), ("when", 0.015), ("where", 0.015))
_VIDEO: dict = {}


def _zipf(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1)
    return rng.choice(n, size=size, p=p / p.sum())


def _questions(rng: np.random.Generator, videos: np.ndarray, per_video: np.ndarray, first_id: int,
               categories: np.ndarray) -> list[dict]:
    n = int(per_video.sum())
    wh = rng.choice(len(_WH), size=n, p=[w for _, w in _WH])
    words = _zipf(rng, 6000, (n, 3))
    answers = _zipf(rng, 4000, n)
    vid = np.repeat(videos, per_video)
    return [{"answer": f"a{answers[i]}", "category_id": int(categories[vid[i]]), "id": first_id + i,
             "question": f"{_WH[wh[i]][0]} is the w{words[i, 0]} w{words[i, 1]} the w{words[i, 2]}?",
             "video_id": int(vid[i])} for i in range(n)]


def _write_video(job: tuple[int, int]) -> int:
    """One clip ``videos/all/video<N>.mp4`` (skipped when present: generation resumes)."""
    import av

    vid, category = job
    root, frames, fps, w, h = (_VIDEO[k] for k in ("root", "frames", "fps", "width", "height"))
    path = Path(root) / "videos" / "all" / f"video{vid}.mp4"
    if path.is_file():
        return vid
    rng = np.random.default_rng(np.random.SeedSequence(_VIDEO["seed"], spawn_key=(vid,)))
    hue = np.array([category * 12 % 256, 255 - category * 12 % 256, (category * 40) % 256], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = (hue[None, None] * (0.4 + 0.6 * (xx / w))[..., None] * (0.5 + 0.5 * (yy / h))[..., None]).astype(np.uint8)
    squares = [(rng.integers(0, w - 48), rng.integers(0, h - 48), rng.integers(-6, 7), rng.integers(-6, 7),
                rng.integers(0, 256, 3).astype(np.uint8)) for _ in range(2)]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "28"}
        for t in range(frames):
            img = base.copy()
            for x0, y0, dx, dy, col in squares:
                x, y = int(np.clip(x0 + dx * t, 0, w - 48)), int(np.clip(y0 + dy * t, 0, h - 48))
                img[y: y + 48, x: x + 48] = col
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)
    return vid


def write_msrvtt_qa_like(root: str | Path, scale: float = 1.0, *, seed: int = 0, frames: int = 24, fps: int = 8,
                         width: int = 320, height: int = 240, workers: int | None = None,
                         progress: bool = False) -> dict:
    """Write the dataset under ``root``; returns ``{split: {"videos", "questions"}}``.

    ``scale``: fraction of MSRVTT-QA's videos and questions (1.0 = 10,000 / 243,680). Video ids stay
    contiguous per split, starting at 0 / #train / #train + #val. Existing videos are kept (resume).
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale={scale}: use a fraction in (0, 1]")
    root = Path(root)
    (root / "videos" / "all").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = {s: (max(2, round(v * scale)), max(2, round(q * scale))) for s, (v, q) in MSRVTT_QA_SIZE.items()}
    total = sum(v for v, _ in sizes.values())
    categories = rng.integers(0, 20, size=total)
    nt = sizes["train"][0]
    categories[: min(20, nt)] = np.arange(min(20, nt))       # train has every category (when it has 20 videos)
    rest = categories[nt:]                                   # val/test categories must be known from train
    missing = ~np.isin(rest, categories[:nt])
    rest[missing] = categories[:nt][np.arange(int(missing.sum())) % nt]
    summary, first_video, first_id = {}, 0, 0
    for split, (v, q) in sizes.items():
        videos = np.arange(first_video, first_video + v)
        per = np.full(v, q // v) + (np.arange(v) < q % v)        # q questions spread over v videos
        rows = _questions(rng, videos, per, first_id, categories)
        (root / f"{split}_qa.json").write_text(json.dumps(rows, separators=(",", ":")))
        summary[split] = {"videos": v, "questions": len(rows)}
        first_video, first_id = first_video + v, first_id + len(rows)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    _VIDEO.update(root=str(root), frames=frames, fps=fps, width=width, height=height, seed=seed)
    jobs = [(i, int(categories[i])) for i in range(total)]
    workers = workers or min(8, os.cpu_count() or 1)
    with Progress(TextColumn("write videos"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("videos", total=total)
        if workers > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_video, jobs, chunksize=16):
                    bar.advance(task)
        else:
            for j in jobs:
                _write_video(j)
                bar.advance(task)
    _VIDEO.clear()
    return summary
