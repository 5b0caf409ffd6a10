"""Sprite banks: every sprite (a name + a category) pre-rendered in each art style at each size.

``emoji``: the emoji that exist in all three real art styles (EmojiOne PNG, Noto Color Emoji,
Symbola outline glyph); names and categories come from EmojiOne's ``config/index.json``.
``shapes``: procedural shapes × colours × patterns in three renderings (flat, outline, gradient).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["SpriteBank", "emoji_bank", "shapes_bank"]

#: EmojiOne categories kept (flags need two code points, modifiers and extras are not objects).
EMOJI_CATEGORIES = ("people", "nature", "food", "activity", "travel", "objects", "symbols")


@dataclass
class SpriteBank:
    names: list[str]                      # (S,) unique sprite names (answers of "what" questions)
    categories: list[str]                 # category names
    category: np.ndarray                  # (S,) int64 category index of each sprite
    styles: list[str]                     # art styles, index = style id
    bitmaps: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (style, size) → (S, s, s, 4) uint8
    provenance: dict[str, str] = field(default_factory=dict)  # style → where its art comes from

    def by_category(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.category == c) for c in range(len(self.categories))]


def _fit_square(img: Image.Image, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """Crop to the alpha bounding box, pad to a centred square, resize (premultiplied) to each size."""
    img = img.convert("RGBA")
    bbox = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox() or (0, 0, *img.size)
    img = img.crop(bbox)
    side = max(img.size)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    pre = canvas.convert("RGBa")
    return [np.asarray(pre.resize((s, s), Image.Resampling.LANCZOS).convert("RGBA")) for s in sizes]


# ---------------------------------------------------------------------------------------- emoji
def _cmap(path: Path) -> set[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), lazy=True)
    return set(font.getBestCmap() or {})


def emoji_bank(gemojione: Path, noto: Path, symbola: Path, sizes: tuple[int, ...]) -> SpriteBank:
    index = json.loads((gemojione / "config" / "index.json").read_text())
    png_dir = gemojione / "assets" / "png"
    noto_cmap, sym_cmap = _cmap(noto), _cmap(symbola)
    chosen: dict[str, tuple[int, str, str]] = {}
    for key in sorted(index):
        e = index[key]
        code = e["unicode"].upper()
        if e.get("category") not in EMOJI_CATEGORIES or "-" in code:
            continue
        cp = int(code, 16)
        name = e["name"].lower().strip()
        if cp in noto_cmap and cp in sym_cmap and (png_dir / f"{code}.png").is_file() and name not in chosen:
            chosen[name] = (cp, e["category"], code)
    names = sorted(chosen)
    cats = list(EMOJI_CATEGORIES)
    category = np.array([cats.index(chosen[n][1]) for n in names], dtype=np.int64)
    styles = ["emojione", "noto", "symbola"]
    per_style: list[list[list[np.ndarray]]] = [[], [], []]
    noto_font = ImageFont.truetype(str(noto), 109)  # the only size the CBDT bitmaps exist at
    sym_font = ImageFont.truetype(str(symbola), 96)
    for name in names:
        cp, _, code = chosen[name]
        ch = chr(cp)
        one = Image.open(png_dir / f"{code}.png").convert("RGBA")
        per_style[0].append(_fit_square(one, sizes))
        canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((10, 10), ch, font=noto_font, embedded_color=True)
        per_style[1].append(_fit_square(canvas, sizes))
        # Symbola is monochrome: ink it with EmojiOne's mean colour (so colour still names the emoji),
        # saturated, inside a dark outline.
        a = np.asarray(one, dtype=np.float32)
        w = a[..., 3:] / 255.0
        mean = (a[..., :3] * w).sum((0, 1)) / max(float(w.sum()), 1.0)
        ink = tuple(int(v) for v in np.clip(mean * (220.0 / max(float(mean.max()), 1.0)), 0, 255))
        canvas = Image.new("RGBA", (140, 140), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((10, 10), ch, font=sym_font, fill=(*ink, 255),
                                    stroke_width=3, stroke_fill=(20, 20, 20, 255))
        per_style[2].append(_fit_square(canvas, sizes))
    bank = SpriteBank(names, cats, category, styles, provenance={
        "emojione": "EmojiOne 2.x PNGs (Debian ruby-gemojione, CC-BY 4.0)",
        "noto": "Noto Color Emoji font (Debian fonts-noto-color-emoji, OFL 1.1)",
        "symbola": "Symbola font glyphs, inked with EmojiOne's mean colour (Debian fonts-symbola)",
    })
    for st in range(3):
        for k, s in enumerate(sizes):
            bank.bitmaps[st, s] = np.stack([sp[k] for sp in per_style[st]])
    return bank


# --------------------------------------------------------------------------------------- shapes
SHAPES = ("circle", "square", "triangle", "diamond", "star", "heart", "cross", "ring", "hexagon",
          "crescent", "arrow", "pentagon")
COLOURS = {"red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (245, 220, 30), "green": (40, 170, 50),
           "cyan": (30, 200, 210), "blue": (30, 70, 220), "purple": (140, 50, 190), "pink": (245, 120, 180),
           "brown": (130, 80, 35), "white": (245, 245, 245), "black": (25, 25, 25), "gray": (130, 130, 130)}
PATTERNS = ("plain", "striped", "dotted")
_BASE = 96  # supersampled drawing resolution


def _regular(n: int, r: float = 0.45, rot: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(0.5 + r * math.cos(rot + 2 * math.pi * k / n), 0.5 + r * math.sin(rot + 2 * math.pi * k / n))
            for k in range(n)]


def _shape_mask(shape: str) -> np.ndarray:
    img = Image.new("L", (_BASE, _BASE), 0)
    d = ImageDraw.Draw(img)

    def P(pts):  # unit coordinates → pixels
        return [(x * (_BASE - 1), y * (_BASE - 1)) for x, y in pts]

    if shape == "circle":
        d.ellipse(P([(0.05, 0.05), (0.95, 0.95)]), fill=255)
    elif shape == "square":
        d.rectangle(P([(0.1, 0.1), (0.9, 0.9)]), fill=255)
    elif shape == "triangle":
        d.polygon(P([(0.5, 0.06), (0.95, 0.9), (0.05, 0.9)]), fill=255)
    elif shape == "diamond":
        d.polygon(P([(0.5, 0.03), (0.9, 0.5), (0.5, 0.97), (0.1, 0.5)]), fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            r = 0.48 if k % 2 == 0 else 0.2
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((0.5 + r * math.cos(a), 0.53 + r * math.sin(a)))
        d.polygon(P(pts), fill=255)
    elif shape == "heart":
        d.ellipse(P([(0.05, 0.1), (0.53, 0.55)]), fill=255)
        d.ellipse(P([(0.47, 0.1), (0.95, 0.55)]), fill=255)
        d.polygon(P([(0.07, 0.42), (0.93, 0.42), (0.5, 0.93)]), fill=255)
    elif shape == "cross":
        d.rectangle(P([(0.35, 0.05), (0.65, 0.95)]), fill=255)
        d.rectangle(P([(0.05, 0.35), (0.95, 0.65)]), fill=255)
    elif shape == "ring":
        d.ellipse(P([(0.05, 0.05), (0.95, 0.95)]), fill=255)
        d.ellipse(P([(0.3, 0.3), (0.7, 0.7)]), fill=0)
    elif shape == "hexagon":
        d.polygon(P(_regular(6, 0.47, 0.0)), fill=255)
    elif shape == "crescent":
        d.ellipse(P([(0.05, 0.05), (0.95, 0.95)]), fill=255)
        d.ellipse(P([(0.3, -0.05), (1.1, 0.75)]), fill=0)
    elif shape == "arrow":
        d.polygon(P([(0.05, 0.35), (0.55, 0.35), (0.55, 0.1), (0.95, 0.5), (0.55, 0.9), (0.55, 0.65),
                     (0.05, 0.65)]), fill=255)
    elif shape == "pentagon":
        d.polygon(P(_regular(5, 0.48)), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(img) > 127


def shapes_bank(sizes: tuple[int, ...]) -> SpriteBank:
    yy, xx = np.mgrid[0:_BASE, 0:_BASE].astype(np.float32) / _BASE
    pattern_masks = {
        "plain": np.zeros((_BASE, _BASE), bool),
        "striped": ((xx + yy) * 6).astype(int) % 2 == 1,
        "dotted": ((xx * 5 % 1 - 0.5) ** 2 + (yy * 5 % 1 - 0.5) ** 2) < 0.07,
    }
    shade = np.clip(1.35 - 1.1 * np.hypot(xx - 0.3, yy - 0.3), 0.35, 1.35)[..., None]  # gradient lighting
    names, category, per_style = [], [], [[], [], []]
    for si, shape in enumerate(SHAPES):
        mask = _shape_mask(shape)
        inner = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(13))) > 127
        edge = mask & ~inner
        for cname, rgb in COLOURS.items():
            col = np.array(rgb, np.float32)
            lum = float(col @ np.array([0.299, 0.587, 0.114], np.float32))
            alt = col * 0.4 if lum > 90 else np.minimum(col + 150, 255)  # pattern ink contrasts with the fill
            for pat in PATTERNS:
                pm = pattern_masks[pat] & mask
                names.append(cname + " " + shape if pat == "plain" else f"{pat} {cname} {shape}")
                category.append(si)
                renders = []
                for style in ("flat", "outline", "gradient"):
                    rgbf = np.broadcast_to(col, (_BASE, _BASE, 3)).copy()
                    if style == "gradient":
                        rgbf = rgbf * shade
                    rgbf[pm] = alt
                    alpha = mask if style != "outline" else (edge | pm)
                    if style == "outline":
                        rgbf[pm] = col
                    rgba = np.concatenate([np.clip(rgbf, 0, 255), alpha[..., None] * 255.0], -1).astype(np.uint8)
                    renders.append(_fit_square(Image.fromarray(rgba, "RGBA"), sizes))
                for st in range(3):
                    per_style[st].append(renders[st])
    bank = SpriteBank(names, list(SHAPES), np.array(category, np.int64), ["flat", "outline", "gradient"],
                      provenance={s: "procedural (paramcast)" for s in ("flat", "outline", "gradient")})
    for st in range(3):
        for k, s in enumerate(sizes):
            bank.bitmaps[st, s] = np.stack([sp[k] for sp in per_style[st]])
    return bank
