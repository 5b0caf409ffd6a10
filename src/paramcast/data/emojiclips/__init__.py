"""EmojiClips: the offline video-QA benchmark built from real emoji art and real photos.

>>> from paramcast.data.emojiclips import load
>>> ds = load("tiny", source="shapes", root=tmp)       # doctest: +SKIP
>>> ds.history, ds.new, ds.unseen                       # ClipSet splits  # doctest: +SKIP
"""

from paramcast.data.emojiclips._assets import AssetsMissing
from paramcast.data.emojiclips.config import PRESETS, EmojiClipsConfig
from paramcast.data.emojiclips.dataset import EmojiClips, load

__all__ = ["AssetsMissing", "EmojiClips", "EmojiClipsConfig", "PRESETS", "load"]
