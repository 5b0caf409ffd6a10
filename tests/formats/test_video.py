"""PyAV decoding: uniform sampling (middle of T equal segments) picks the expected frames."""

from __future__ import annotations

import numpy as np
import pytest
from formats_media import COLOURS, write_clip, write_image

from paramcast.data.video import read_image, read_video, uniform_indices


def test_uniform_indices_hand_case():
    assert uniform_indices(90, 3).tolist() == [15, 45, 75]
    assert uniform_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert uniform_indices(2, 4).tolist() == [0, 0, 1, 1]      # short clip: frames repeat
    with pytest.raises(ValueError):
        uniform_indices(0, 3)


@pytest.mark.parametrize("codec,suffix", [("libx264", "mp4"), ("mpeg4", "avi"), ("gif", "gif")])
def test_read_video_samples_the_middle_of_each_segment(tmp_path, codec, suffix):
    path = write_clip(tmp_path / f"clip.{suffix}", codec=codec)
    frames = read_video(path, 4, 16)                          # one frame per colour segment
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8
    assert np.abs(frames[:, 8, 8].astype(int) - COLOURS.astype(int)).max() <= 8   # codec rounding only
    eight = read_video(path, 8, (12, 20))
    assert eight.shape == (8, 12, 20, 3)
    assert np.abs(eight[::2, 6, 10].astype(int) - COLOURS.astype(int)).max() <= 8


def test_more_frames_than_the_clip_repeats_frames(tmp_path):
    frames = read_video(write_clip(tmp_path / "short.mp4", n=4), 8, 8)
    assert frames.shape == (8, 8, 8, 3)
    assert np.abs(frames[::2, 4, 4].astype(int) - COLOURS.astype(int)).max() <= 8


def test_read_image_and_missing_files(tmp_path):
    img = read_image(write_image(tmp_path / "a.jpg", (0, 128, 255)), 16)
    assert img.shape == (1, 16, 16, 3)
    assert np.abs(img[0, 8, 8].astype(int) - [0, 128, 255]).max() <= 4
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video(tmp_path / "nope.mp4", 4, 16)
