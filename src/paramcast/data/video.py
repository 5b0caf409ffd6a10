"""Decode video and image files into the uint8 arrays a :class:`~paramcast.data.base.ClipSet` holds.

Videos are read with PyAV (FFmpeg; mp4, avi, webm and animated GIF alike), images with PIL. Frames
are sampled uniformly the way All-in-One and most video-QA code do: the clip is cut into T equal
segments and the frame in the middle of each segment is kept, so T = 3 on a 90-frame clip keeps
frames 15, 45 and 75. Every frame is resized (not cropped) to H x W.

PyAV is an optional dependency: ``pip install 'paramcast[video]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_image", "read_video", "uniform_indices"]


def uniform_indices(num_frames: int, t: int) -> np.ndarray:
    """Indices of the middle frame of ``t`` equal segments of a ``num_frames``-frame clip, (t,) int64.

    A clip shorter than ``t`` repeats frames (indices are non-decreasing), so every clip gives t.
    """
    if num_frames < 1 or t < 1:
        raise ValueError(f"uniform_indices(num_frames={num_frames}, t={t}): both must be >= 1")
    return np.floor((np.arange(t) + 0.5) * num_frames / t).astype(np.int64)


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("decoding video needs PyAV: pip install 'paramcast[video]' (or pip install av)") from e
    return av


def _count_frames(container, stream) -> int:
    """Frame count from the header, or by demuxing (no decoding) when the header has none (GIF, some avi)."""
    if stream.frames > 0:
        return int(stream.frames)
    n = sum(1 for packet in container.demux(stream) if packet.size > 0)
    container.seek(0)
    return n


def read_video(path: str | Path, frames: int, size: int | tuple[int, int]) -> np.ndarray:
    """Uniformly sampled, resized RGB frames of one video file: (frames, H, W, 3) uint8.

    ``size`` is H = W or (H, W). Decoding runs sequentially up to the last frame needed (seeking
    is unreliable on short, keyframe-sparse web clips); a header that over-counts frames is handled
    by repeating the last decoded frame.
    """
    av = _av()
    h, w = (size, size) if isinstance(size, int) else size
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = _count_frames(container, stream)
        if n == 0:
            raise ValueError(f"{path} has no frames")
        wanted = uniform_indices(n, frames)
        out = np.zeros((frames, h, w, 3), dtype=np.uint8)
        slot, last = 0, None
        for i, frame in enumerate(container.decode(stream)):
            if i < wanted[slot]:
                continue
            last = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
            while slot < frames and wanted[slot] == i:
                out[slot] = last
                slot += 1
            if slot == frames:
                break
    if last is None:
        raise ValueError(f"{path}: could not decode any frame")
    out[slot:] = last   # header over-counted: repeat the last decoded frame
    return out


def read_image(path: str | Path, size: int | tuple[int, int]) -> np.ndarray:
    """One RGB image resized to H x W: (1, H, W, 3) uint8 (a one-frame clip)."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    with Image.open(path) as im:
        im = im.convert("RGB").resize((w, h), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)[None].copy()
