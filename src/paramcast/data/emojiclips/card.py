"""The dataset card (Markdown) and the contact sheet (PNG) of a built EmojiClips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from paramcast.data.base import IGNORE
from paramcast.data.emojiclips._scenes import BACKGROUND_FAMILIES
from paramcast.data.emojiclips.dataset import SPLITS, EmojiClips

__all__ = ["contact_sheet", "dataset_card"]


def _mix(values: torch.Tensor, names: list[str], top: int = 3) -> str:
    counts = torch.bincount(values, minlength=len(names)).double()
    frac = counts / counts.sum().clamp_min(1)
    order = torch.argsort(frac, descending=True)[:top]
    return ", ".join(f"{names[i]} {frac[i]:.0%}" for i in order.tolist())


def dataset_card(ds: EmojiClips) -> str:
    c, v = ds.config, ds.vocab
    real = (["EmojiOne PNG art (Debian `ruby-gemojione`, CC-BY 4.0) with its emoji names, categories",
             "Noto Color Emoji glyphs (Debian `fonts-noto-color-emoji`, OFL 1.1)",
             "Symbola glyph outlines (Debian `fonts-symbola`), inked with EmojiOne's mean colour"]
            if c.source == "emoji" else ["nothing: the `shapes` source draws its sprites procedurally"])
    refs = ", ".join(f"{fam}: {', '.join(r.split(':')[1] for r in refs)}" for fam, refs in BACKGROUND_FAMILIES.items())
    lines = [f"# EmojiClips `{c.name}` — source `{c.source}`, seed {c.seed}", "",
             "Offline video-QA benchmark of paramcast: each device is a domain (art style, camera, "
             "background family, user preference). Regenerate with "
             f"`paramcast data prepare --preset {c.name} --source {c.source} --seed {c.seed}`.", "",
             "## What is real", "", *[f"- Sprites: {r}" for r in real],
             f"- Backgrounds: photos and textures bundled with scikit-image / scikit-learn ({refs})", "",
             "## What is generated", "",
             "- Motion: 1–3 sprites per clip move left/right/up/down or stay still; some appear or disappear",
             "- Compositing: alpha-blended sprites over random crops of the backgrounds",
             "- Camera: per-device colour cast, brightness/contrast, sensor noise, blur",
             "- Language: template questions (what / category / direction / count / exists / appear), "
             "5 multiple-choice candidates differing in one attribute, one caption per clip",
             "- Devices: Dirichlet preferences over categories and question types; unseen devices use "
             "(style, background) pairs and camera profiles no training device uses", "",
             "## Statistics", "",
             f"- Frames: {c.frames} × {c.size}×{c.size} RGB uint8 per clip (stored once, rows point at their clip); {ds.info.get('n_sprites', '?')} sprites "
             f"in {len(v.styles)} art styles ({', '.join(v.styles)}); {len(v.categories)} categories",
             f"- Devices: {c.n_train_devices} training, {c.n_unseen_devices} unseen",
             *[f"- Rows `{s}`: {len(ds.split(s))} ({int(torch.unique(ds.split(s).clip_id).numel())} clips), "
               f"answers outside the vocabulary: {float((ds.split(s).answer == IGNORE).double().mean()):.1%}"
               for s in SPLITS],
             f"- Answer classes (top-{c.answer_vocab} of the history): {len(v.answers)}; "
             f"multiple-choice strings: {len(v.mc_answers)}; word vocabulary: {len(v.words)}",
             f"- Build time: {ds.info.get('build_seconds', '?')} s", "",
             "## Devices", "",
             "| device | split | style | camera | background | rows | mean RGB | top categories | top question types |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, d in enumerate(ds.devices):
        cs = ds.history if d["split"] == "train" else ds.unseen
        m = cs.device == i
        sub = cs.frames[m, :, ::4, ::4].double()
        rgb = "/".join(f"{x:.0f}" for x in sub.mean((0, 1, 2, 3)).tolist())
        lines.append(f"| {d['name']} | {'history' if d['split'] == 'train' else 'unseen'} | {d['style']} | "
                     f"{d['camera']['name']} | {d['background']} | {int(m.sum())} | {rgb} | "
                     f"{_mix(cs.category[m], v.categories)} | {_mix(cs.qtype[m], v.qtypes)} |")
    lines += ["", "## Top answers (history)", "",
              ", ".join(f"{a} ({n})" for a, n in _top_answers(ds)), ""]
    return "\n".join(lines)


def _top_answers(ds: EmojiClips, k: int = 15) -> list[tuple[str, int]]:
    counts = torch.bincount(ds.history.answer[ds.history.answer >= 0], minlength=len(ds.vocab.answers))
    return [(ds.vocab.answers[i], int(counts[i])) for i in torch.argsort(counts, descending=True)[:k].tolist()]


def contact_sheet(ds: EmojiClips, path: str | Path, clips_per_device: int = 2, scale: int = 2) -> Path:
    """PNG: ``clips_per_device`` clips of every device (unseen devices last), frames side by side."""
    from PIL import Image, ImageDraw

    T, H = ds.config.frames, ds.config.size
    label_w, pad = 230, 4
    rows = []
    for i, d in enumerate(ds.devices):
        cs = ds.history if d["split"] == "train" else ds.unseen
        idx = (cs.device == i).nonzero().flatten()
        clips, seen = [], set()
        for r in idx.tolist():
            if int(cs.clip_id[r]) not in seen:
                seen.add(int(cs.clip_id[r]))
                clips.append(r)
            if len(clips) == clips_per_device:
                break
        for k, r in enumerate(clips):
            strip = np.concatenate(list(cs.frames[r].numpy()), 1)  # (H, T*W, 3)
            img = Image.fromarray(strip).resize((T * H * scale, H * scale), Image.Resampling.NEAREST)
            row = Image.new("RGB", (label_w + img.width, img.height + pad), "white")
            row.paste(img, (label_w, 0))
            draw = ImageDraw.Draw(row)
            if k == 0:
                draw.text((4, 4), d["name"], fill="black")
                draw.text((4, 18), "UNSEEN device" if d["split"] == "unseen" else "training device", fill="gray")
            cap = " ".join(ds.vocab.words[t] for t in cs.caption[r].tolist() if t > 1)
            words, line, y = cap.split(), "", 34
            for w in words:  # wrap the caption in the label column
                if len(line) + len(w) > 36:
                    draw.text((4, y), line, fill="navy")
                    line, y = "", y + 12
                line = f"{line} {w}".strip()
            draw.text((4, y), line, fill="navy")
            rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
