"""EmojiClips on disk: the per-row layout (format 2, one copy of the frames per question) against the
per-clip store (format 3), same preset and seed, side by side, with a row-by-row equality check.

``--old`` is a build directory written by the format-2 code (e.g. ``data/standard/emoji-seed0`` of a
checkout before the clip store); the new layout is built into ``--root`` (or read from it when
already built). Every tensor of every split is compared, frames in chunks, so the new files hold
exactly the old rows.

    python benchmarks/scale/emojiclips_store.py --preset standard --old /work/main/data/standard/emoji-seed0 \\
        --root /tmp/emojiclips-new --out benchmarks/results/emojiclips_store
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from paramcast.bench.report import markdown_table, write_result
from paramcast.data.base import ClipSet
from paramcast.data.emojiclips import load
from paramcast.data.emojiclips.dataset import SPLITS


def _bytes(directory: Path) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
    return {"files": files, "total": sum(files.values())}


def _same(old: ClipSet, new: ClipSet, chunk: int = 1024) -> bool:
    if len(old) != len(new) or old.answer_text != new.answer_text:
        return False
    for name in ClipSet._TENSORS[1:]:
        if not torch.equal(getattr(old, name), getattr(new, name)):
            return False
    return all(torch.equal(old.frames[s: s + chunk], new.frames[s: s + chunk]) for s in range(0, len(old), chunk))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--old", type=Path, required=True, help="a format-2 build directory of the same preset and seed")
    ap.add_argument("--root", type=Path, required=True, help="data root of the new build (assets/ found there)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = load(args.preset, root=args.root, progress=False)
    build_s = round(time.perf_counter() - t0, 1)
    old_cfg = json.loads((args.old / "config.json").read_text())
    if old_cfg["fingerprint"] != ds.config.fingerprint():
        raise SystemExit(f"{args.old} holds another config ({old_cfg['fingerprint']} != {ds.config.fingerprint()})")
    equal = {}
    for s in SPLITS:
        old = ClipSet.load(args.old / f"{s}.safetensors")
        new = ClipSet.load(ds.path / f"{s}.safetensors")
        equal[s] = _same(old, new)
        del old
    old_b, new_b = _bytes(args.old), _bytes(ds.path)
    result = {"preset": args.preset, "fingerprint": ds.config.fingerprint(),
              "rows": {s: len(ds.split(s)) for s in SPLITS},
              "clips": {s: int(ds.split(s).frames.store.shape[0]) for s in SPLITS},
              "old_format": old_cfg["format"], "old_bytes": old_b, "new_bytes": new_b,
              "ratio_new_to_old": round(new_b["total"] / old_b["total"], 4), "rows_equal": equal,
              "new_build_seconds": build_s if not ds.from_cache else None}
    print(json.dumps(result, indent=1))
    if args.out is not None:   # the JSON with the exact command and the machine, and a Markdown table
        write_result(result, args.out, markdown_table([
            {"layout": f"format {old_cfg['format']} (per row)", "bytes": old_b["total"]},
            {"layout": "per-clip store", "bytes": new_b["total"], "ratio": result["ratio_new_to_old"],
             "rows equal": all(equal.values())}], ["layout", "bytes", "ratio", "rows equal"]))


if __name__ == "__main__":
    main()
