"""Configuration of an EmojiClips build, and the named presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["EmojiClipsConfig", "PRESETS", "SOURCES"]

#: Sprite sources: real emoji art from OS packages, or procedural shapes (no OS assets, for tests).
SOURCES = ("emoji", "shapes")


@dataclass(frozen=True)
class EmojiClipsConfig:
    """Everything that decides the bytes of a build. Same config → identical tensors."""

    name: str = "custom"                 # preset name; also the cache folder under the data root
    source: str = "shapes"               # "emoji" (real art, needs `paramcast data prepare`) or "shapes"
    seed: int = 0                        # one seed for devices, clips, questions and camera noise
    n_train_devices: int = 8             # devices whose clips form the cloud history (and `new`)
    n_unseen_devices: int = 3            # held-out devices (at least one held-out factor combination each)
    history_clips: int = 190             # clips per training device in the cloud history
    new_clips: int = 40                  # fresh clips per training device (personalisation split)
    unseen_clips: int = 100              # clips per unseen device (generalisation split)
    questions_per_clip: int = 2          # rows per clip, each a different question type
    frames: int = 8                      # T, frames per clip
    size: int = 64                       # H = W of a frame in pixels
    sprite_sizes: tuple[int, ...] = (20, 26, 32)  # pre-rendered sprite sizes (pixels), one drawn per sprite
    max_sprites: int = 3                 # 1..max_sprites sprites per clip
    answer_vocab: int = 1000             # V: the top-V history answers are classes, others → IGNORE
    category_alpha: float = 0.5          # Dirichlet concentration of a device's category preference
    qtype_alpha: float = 1.0             # Dirichlet concentration of a device's question-type preference
    personal_sprites: int = 0            # a user's own recurring sprites (0 = none: every sprite drawn afresh)
    personal_scenes: int = 0             # a user's own recurring background crops (0 = none)
    personal_share: float = 0.8          # chance that a sprite / background of a clip is one of the user's own
    question_len: int = 20               # Lq, padded/truncated question length (incl. [CLS])
    caption_len: int = 40                # Lc, padded/truncated caption length (incl. [CLS])
    workers: int = 2                     # processes rendering devices in parallel (1 = in process)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}: use one of {SOURCES} ('shapes' needs no OS assets)")
        if self.n_train_devices < 1 or self.n_unseen_devices < 1:
            raise ValueError("n_train_devices and n_unseen_devices must both be >= 1: the benchmark needs "
                             "training devices for the history and unseen devices for generalisation")
        for f in ("history_clips", "new_clips", "unseen_clips"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: every split needs at least 1 clip per device")
        if not 1 <= self.questions_per_clip <= 3:
            raise ValueError(f"questions_per_clip={self.questions_per_clip}: use 1..3 (each question of a "
                             "clip has a different type)")
        if self.frames < 4:
            raise ValueError(f"frames={self.frames}: use >= 4 so sprites can appear and disappear")
        if self.size < 16 or self.size % 8:
            raise ValueError(f"size={self.size}: use a multiple of 8, >= 16 (e.g. 32 or 64)")
        if not self.sprite_sizes or min(self.sprite_sizes) < 6 or max(self.sprite_sizes) > self.size // 2:
            raise ValueError(f"sprite_sizes={self.sprite_sizes}: use sizes in [6, size // 2 = {self.size // 2}] "
                             "so a sprite can move inside the frame")
        if not 1 <= self.max_sprites <= 3:
            raise ValueError(f"max_sprites={self.max_sprites}: use 1..3")
        if self.answer_vocab < 10:
            raise ValueError(f"answer_vocab={self.answer_vocab}: use >= 10 answer classes")
        if self.category_alpha <= 0 or self.qtype_alpha <= 0:
            raise ValueError("category_alpha and qtype_alpha must be > 0 (smaller = more skewed devices)")
        if self.personal_sprites < 0 or self.personal_scenes < 0 or not 0.0 <= self.personal_share <= 1.0:
            raise ValueError("personal_sprites and personal_scenes must be >= 0 and personal_share in [0, 1]")
        if self.question_len < 8 or self.caption_len < 8:
            raise ValueError("question_len and caption_len must be >= 8 tokens")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: use >= 1")

    def replace(self, **changes) -> EmojiClipsConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EmojiClipsConfig:
        d = dict(d)
        d["sprite_sizes"] = tuple(d["sprite_sizes"])
        return cls(**d)

    def fingerprint(self) -> str:
        """Hash of every field that changes the bytes (``workers`` and ``name`` do not)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("workers", "name")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


#: Every preset's users have their own things and places (docs/emojiclips.md, "Personal content"):
#: 24 sprites and 4 scenes each, 80 % of a clip's sprites and backgrounds drawn from them. Chosen
#: before any method ran on it, as what makes a person's own photos personal, not tuned on results.
_PERSONAL = dict(personal_sprites=24, personal_scenes=4, personal_share=0.8)

PRESETS: dict[str, EmojiClipsConfig] = {
    # The benchmark: 16 + 4 devices, ~20k history rows, real emoji art.
    "standard": EmojiClipsConfig(name="standard", source="emoji", n_train_devices=16, n_unseen_devices=4,
                                 history_clips=640, new_clips=120, unseen_clips=400, answer_vocab=1000,
                                 **_PERSONAL),
    # CI / demo smoke test: builds in seconds with the shapes source.
    "quick": EmojiClipsConfig(name="quick", source="shapes", n_train_devices=8, n_unseen_devices=3,
                              history_clips=190, new_clips=40, unseen_clips=100, answer_vocab=500, **_PERSONAL),
    # Unit tests of other modules: 32×32 frames, 4 + 2 devices, ~600 history rows.
    "tiny": EmojiClipsConfig(name="tiny", source="shapes", n_train_devices=4, n_unseen_devices=2,
                             history_clips=75, new_clips=15, unseen_clips=30, size=32,
                             sprite_sizes=(10, 13, 16), answer_vocab=300, workers=1, **_PERSONAL),
}
