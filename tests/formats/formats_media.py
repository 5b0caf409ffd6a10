"""Writers of tiny media files for the format tests: solid-colour clips (PyAV) and images (PIL)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

#: Solid colours of the four equal segments of every synthetic 16-frame clip.
COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)], dtype=np.uint8)


def write_clip(path: Path, n: int = 16, codec: str = "libx264", shift: int = 0) -> Path:
    """An n-frame 32x32 clip: segment k of 4 is COLOURS[(k + shift) % 4]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=8)
        s.width = s.height = 32
        s.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        for i in range(n):
            img = np.empty((32, 32, 3), np.uint8)
            img[:] = COLOURS[(i * 4 // n + shift) % 4]
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_image(path: Path, colour=(0, 128, 255)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), tuple(colour)).save(path)
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path
