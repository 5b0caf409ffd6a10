"""One device's clips: sprites moving over a real background, seen through the device's camera,
with template questions, 5 multiple-choice candidates and a caption per clip."""

from __future__ import annotations

import numpy as np

from paramcast.data.emojiclips._scenes import QTYPES, DeviceSpec
from paramcast.data.emojiclips._sprites import SpriteBank

__all__ = ["DIRECTIONS", "NUMBERS", "YESNO_CANDIDATES", "personal_sets", "render_device"]

DIRECTIONS = ("left", "right", "up", "down", "still")
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}
NUMBERS = ("zero", "one", "two", "three", "four")
YESNO_CANDIDATES = ("yes", "no", "maybe", "always", "never")


def _moving(d: str) -> str:
    return "standing still" if d == "still" else f"moving {d}"


def _camera(buf: np.ndarray, spec: DeviceSpec, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) float32 → uint8 through the device's camera profile."""
    cam = spec.camera
    x = buf * np.asarray(cam.gain, np.float32)
    x = (x - 128.0) * cam.contrast + 128.0 + cam.brightness
    for _ in range(cam.blur):
        x = np.concatenate([x[:, :1], x, x[:, -1:]], 1)
        x = 0.25 * x[:, :-2] + 0.5 * x[:, 1:-1] + 0.25 * x[:, 2:]
        x = np.concatenate([x[:, :, :1], x, x[:, :, -1:]], 2)
        x = 0.25 * x[:, :, :-2] + 0.5 * x[:, :, 1:-1] + 0.25 * x[:, :, 2:]
    x += rng.standard_normal(x.shape, dtype=np.float32) * cam.noise
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _negatives(answer: str, pool: list[str], rng: np.random.Generator, k: int = 4) -> list[str]:
    """``k`` distinct strings from ``pool`` (in order of preference) other than ``answer``."""
    out: list[str] = []
    for c in pool:
        if c != answer and c not in out:
            out.append(c)
            if len(out) == k:
                break
    return out


def personal_sets(spec: DeviceSpec, bank: SpriteBank, backgrounds: dict[str, list[np.ndarray]], size: int,
                  n_sprites: int, n_scenes: int, rng: np.random.Generator) -> tuple[list[int], list[tuple[int, int, int]]]:
    """A user's own recurring content, fixed for the device across its splits.

    ``n_sprites`` distinct sprites drawn with the device's category preference (a person's own things,
    pets, ...) and ``n_scenes`` fixed background crops of its family (their rooms and streets).
    """
    by_cat = bank.by_category()
    cat_p = np.asarray(spec.category_pref)
    n_sprites = min(n_sprites, len(bank.names))
    sprites: list[int] = []
    while len(sprites) < n_sprites:
        cat = rng.choice(len(cat_p), p=cat_p)
        sid = int(by_cat[cat][rng.integers(len(by_cat[cat]))])
        if sid not in sprites:
            sprites.append(sid)
    bgs = backgrounds[spec.background]
    scenes = []
    for _ in range(n_scenes):
        b = int(rng.integers(len(bgs)))
        scenes.append((b, int(rng.integers(bgs[b].shape[0] - size + 1)), int(rng.integers(bgs[b].shape[1] - size + 1))))
    return sprites, scenes


def render_device(spec: DeviceSpec, n_clips: int, bank: SpriteBank, backgrounds: dict[str, list[np.ndarray]],
                  frames: int, size: int, sprite_sizes: tuple[int, ...], max_sprites: int,
                  questions_per_clip: int, rng: np.random.Generator, personal: tuple[list[int], list[tuple[int, int, int]]] = ([], []),
                  personal_share: float = 0.0) -> tuple[np.ndarray, list[dict]]:
    """Frames (n_clips, T, H, W, 3) uint8 and ``n_clips * questions_per_clip`` row records.

    ``personal`` = (sprite ids, scenes (background index, y0, x0)): the user's own recurring sprites
    and places (:func:`personal_sets`); each sprite and each background of a clip comes from them with
    probability ``personal_share``, otherwise from the device's category preference / background
    family as a whole. Empty sets draw nothing from ``rng`` (older builds keep their bytes).
    """
    own_sprites, own_scenes = personal
    T, H = frames, size
    by_cat = bank.by_category()
    n_names = len(bank.names)
    cat_p = np.asarray(spec.category_pref)
    q_p = np.asarray(spec.qtype_pref)
    step_px = max(1, size // 20)
    out = np.empty((n_clips, T, H, H, 3), np.uint8)
    rows: list[dict] = []
    bgs = backgrounds[spec.background]
    for c in range(n_clips):
        # ---- scene: background crop, sprites, motion, visibility
        if own_scenes and rng.random() < personal_share:
            b, y0, x0 = own_scenes[rng.integers(len(own_scenes))]
            bg = bgs[b]
        else:
            bg = bgs[rng.integers(len(bgs))]
            y0, x0 = rng.integers(bg.shape[0] - H + 1), rng.integers(bg.shape[1] - H + 1)
        buf = np.repeat(bg[None, y0:y0 + H, x0:x0 + H].astype(np.float32), T, 0)  # (T, H, W, 3)
        k = int(rng.integers(1, max_sprites + 1))
        sprites: list[int] = []
        while len(sprites) < k:
            if own_sprites and rng.random() < personal_share:
                sid = int(own_sprites[rng.integers(len(own_sprites))])
            else:
                cat = rng.choice(len(cat_p), p=cat_p)
                sid = int(by_cat[cat][rng.integers(len(by_cat[cat]))])
            if sid not in sprites:
                sprites.append(sid)
        dirs = [DIRECTIONS[i] for i in rng.permutation(len(DIRECTIONS))[:k]]
        vis = []
        for _ in range(k):
            u = rng.random()
            if u < 0.6:
                vis.append((0, T))
            elif u < 0.8:
                vis.append((int(rng.integers(1, T // 2 + 1)), T))  # appears
            else:
                vis.append((0, int(rng.integers(T // 2, T))))      # disappears
        for j in range(k):
            s = int(sprite_sizes[rng.integers(len(sprite_sizes))])
            bm = bank.bitmaps[spec.style, s][sprites[j]].astype(np.float32)  # (s, s, 4)
            dx, dy = _STEP[dirs[j]]
            travel = step_px * (T - 1)
            lo_x, hi_x = (travel if dx < 0 else 0), H - s - (travel if dx > 0 else 0)
            lo_y, hi_y = (travel if dy < 0 else 0), H - s - (travel if dy > 0 else 0)
            px, py = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
            t = np.arange(vis[j][0], vis[j][1])                          # visible frames
            ys = (py + dy * step_px * t)[:, None] + np.arange(s)          # (nt, s)
            xs = (px + dx * step_px * t)[:, None] + np.arange(s)          # (nt, s)
            idx = (t[:, None, None], ys[:, :, None], xs[:, None, :])
            a = bm[..., 3:] / 255.0
            buf[idx] = buf[idx] * (1.0 - a) + bm[..., :3] * a
        out[c] = _camera(buf, spec, rng)

        # ---- language: caption, then questions of distinct types
        names = [bank.names[i] for i in sprites]
        cats = [int(bank.category[i]) for i in sprites]
        phrases = []
        for j in range(k):
            verb = "stays still" if dirs[j] == "still" else f"moves {dirs[j]}"
            if vis[j][0] > 0:
                verb = "appears and " + verb
            elif vis[j][1] < T:
                verb = verb + " and disappears"
            phrases.append(f"a {names[j]} {verb}")
        caption = " and ".join(phrases) + f" in a {spec.background} scene"
        appear = [j for j in range(k) if vis[j][0] > 0]
        vanish = [j for j in range(k) if vis[j][1] < T]
        ok = np.ones(len(QTYPES), bool)
        ok[QTYPES.index("appear")] = len(appear) == 1 or len(vanish) == 1
        p = q_p * ok
        for qt in rng.choice(len(QTYPES), size=questions_per_clip, replace=False, p=p / p.sum()):
            qtype = QTYPES[qt]
            j = int(rng.integers(k))
            main_cat = None

            def same_cat(cat: int) -> list[str]:  # up to 12 random names of one category
                return [bank.names[i] for i in by_cat[cat][rng.permutation(len(by_cat[cat]))[:12]]]

            anywhere = [bank.names[i] for i in rng.integers(0, n_names, 12)]
            if qtype in ("what", "category"):
                if qtype == "what":
                    q = ("what is {}?", "which thing is {}?")[rng.integers(2)].format(_moving(dirs[j]))
                    answer = names[j]
                    pool = names + same_cat(cats[j]) + anywhere
                else:
                    q = ("what kind of thing is {}?", "what category is the thing {}?")[rng.integers(2)]
                    q = q.format(_moving(dirs[j]))
                    answer = bank.categories[cats[j]]
                    pool = [bank.categories[i] for i in rng.permutation(len(bank.categories))]
            elif qtype == "direction":
                q = ("which way does the {} move?", "in which direction is the {} going?")[rng.integers(2)]
                q = q.format(names[j])
                answer, pool = dirs[j], list(DIRECTIONS)
            elif qtype == "count":
                if rng.random() < 0.5:
                    q, n = "how many things are there?", k
                else:
                    q, n = "how many things are moving?", sum(d != "still" for d in dirs)
                answer, pool = NUMBERS[n], list(NUMBERS)
            elif qtype == "exists":
                if rng.random() < 0.5:
                    subject, answer = names[j], "yes"
                else:
                    others = [n for n in same_cat(cats[j]) + anywhere if n not in names]
                    subject, answer = others[0], "no"
                    main_cat = int(bank.category[bank.names.index(subject)])
                q = ("is there a {}?", "does the video show a {}?")[rng.integers(2)].format(subject)
                pool = list(YESNO_CANDIDATES)
            else:  # appear
                if len(appear) == 1 and (len(vanish) != 1 or rng.random() < 0.5):
                    q, j = "what appears after the start?", appear[0]
                else:
                    q, j = "what disappears before the end?", vanish[0]
                answer = names[j]
                pool = names + same_cat(cats[j]) + anywhere
            cands = _negatives(answer, pool, rng) + [answer]
            order = rng.permutation(5)
            cands = [cands[i] for i in order]
            rows.append({"clip": c, "qtype": int(qt), "question": q, "answer": answer, "candidates": cands,
                         "mc_label": cands.index(answer), "caption": caption,
                         "category": cats[j] if main_cat is None else main_cat})
    return out, rows
