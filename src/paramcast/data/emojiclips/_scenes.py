"""Real backgrounds and device domains (art style, camera profile, background family, preference)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

__all__ = ["BACKGROUND_FAMILIES", "CAMERAS", "DeviceSpec", "background_pool", "make_devices", "QTYPES"]

#: Real photos and textures bundled with scikit-image (``skimage.data``) and scikit-learn
#: (``load_sample_images``), grouped into scene families.
BACKGROUND_FAMILIES: dict[str, tuple[str, ...]] = {
    "nature": ("sklearn:flower", "skimage:chelsea", "skimage:hubble_deep_field"),
    "indoor": ("skimage:coffee", "skimage:astronaut", "skimage:clock", "skimage:camera"),
    "texture": ("skimage:brick", "skimage:grass", "skimage:gravel", "skimage:moon"),
    "urban": ("sklearn:china", "skimage:rocket", "skimage:text", "skimage:page"),
}

#: Question types; a device prefers some of them (its user asks those more).
QTYPES = ("what", "category", "direction", "count", "exists", "appear")


@dataclass(frozen=True)
class Camera:
    name: str
    gain: tuple[float, float, float]  # per-channel colour cast
    brightness: float                 # added after contrast, in 0..255 units
    contrast: float                   # scales around mid-grey
    noise: float                      # std of Gaussian sensor noise, 0..255 units
    blur: int                         # passes of a [1, 2, 1] / 4 blur

#: The first six profiles are used by training devices; the last two only by unseen devices.
CAMERAS = (
    Camera("neutral", (1.0, 1.0, 1.0), 0.0, 1.0, 2.0, 0),
    Camera("warm", (1.15, 1.0, 0.78), 6.0, 1.0, 3.0, 0),
    Camera("cool", (0.82, 0.97, 1.2), 0.0, 1.0, 3.0, 0),
    Camera("dim", (1.0, 1.0, 1.0), -45.0, 0.75, 7.0, 0),
    Camera("bright", (1.0, 1.0, 1.0), 40.0, 0.85, 2.0, 0),
    Camera("soft", (1.0, 1.0, 1.0), 0.0, 1.0, 2.0, 1),
    Camera("night", (0.8, 1.2, 0.8), -30.0, 0.9, 11.0, 0),
    Camera("vivid-blur", (1.1, 0.9, 1.1), 0.0, 1.4, 3.0, 2),
)
N_TRAIN_CAMERAS = 6


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    split: str                        # "train" (history + new) or "unseen"
    style: int                        # art style index into SpriteBank.styles
    camera: Camera
    background: str                   # key of BACKGROUND_FAMILIES
    category_pref: tuple[float, ...]  # the user's mix of sprite categories (sums to 1)
    qtype_pref: tuple[float, ...]     # the user's mix of question types (sums to 1)

    def to_dict(self, styles: list[str]) -> dict:
        d = asdict(self)
        d["style"] = styles[self.style]
        return d


def _load_image(ref: str) -> np.ndarray:
    lib, name = ref.split(":")
    if lib == "sklearn":
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def background_pool(size: int) -> dict[str, list[np.ndarray]]:
    """Each family's images, downscaled so a ``size`` × ``size`` crop shows 1/1.5 .. 1/3 of the short side."""
    pool: dict[str, list[np.ndarray]] = {}
    for fam, refs in BACKGROUND_FAMILIES.items():
        pool[fam] = []
        for ref in refs:
            img = Image.fromarray(_load_image(ref))
            for scale in (1.5, 2.0, 3.0):
                short = int(size * scale)
                w, h = img.size
                f = short / min(w, h)
                pool[fam].append(np.asarray(img.resize((max(size, round(w * f)), max(size, round(h * f))),
                                                       Image.Resampling.LANCZOS)))
    return pool


def _pref(rng: np.random.Generator, k: int, alpha: float, floor: float) -> tuple[float, ...]:
    p = (1 - floor) * rng.dirichlet(np.full(k, alpha)) + floor / k
    return tuple(float(x) for x in p / p.sum())


def make_devices(n_train: int, n_unseen: int, n_styles: int, n_categories: int, category_alpha: float,
                 qtype_alpha: float, rng: np.random.Generator, style_names: list[str]) -> list[DeviceSpec]:
    """Training devices, then unseen devices.

    Unseen devices use (style, background family) pairs that no training device uses and camera
    profiles that no training device uses, so each holds held-out factor combinations.
    """
    fams = list(BACKGROUND_FAMILIES)
    pairs = [(s, f) for s in range(n_styles) for f in range(len(fams))]
    order = rng.permutation(len(pairs))
    n_held = max(1, min(n_unseen, len(pairs) // 3))
    held = []  # prefer held-out pairs with distinct styles and families
    for i in order:
        s, f = pairs[i]
        if len(held) < n_held and all(s != hs and f != hf for hs, hf in held):
            held.append((s, f))
    held += [pairs[i] for i in order if pairs[i] not in held][: n_held - len(held)]
    train_pairs = [pairs[i] for i in order if pairs[i] not in held]
    devices = []
    for i in range(n_train):
        s, f = train_pairs[i % len(train_pairs)]
        cam = CAMERAS[(i + i // len(train_pairs)) % N_TRAIN_CAMERAS]
        devices.append(DeviceSpec(f"dev{i:02d}-{style_names[s]}-{fams[f]}-{cam.name}", "train", s, cam, fams[f],
                                  _pref(rng, n_categories, category_alpha, 0.05),
                                  _pref(rng, len(QTYPES), qtype_alpha, 0.1)))
    for i in range(n_unseen):
        s, f = held[i % len(held)]
        cam = CAMERAS[N_TRAIN_CAMERAS + i % (len(CAMERAS) - N_TRAIN_CAMERAS)]
        devices.append(DeviceSpec(f"unseen{i}-{style_names[s]}-{fams[f]}-{cam.name}", "unseen", s, cam, fams[f],
                                  _pref(rng, n_categories, category_alpha, 0.05),
                                  _pref(rng, len(QTYPES), qtype_alpha, 0.1)))
    return devices
