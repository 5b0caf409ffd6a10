"""Image captioning: COCO Captions 2017 (Chen et al., 2015) and nocaps (Agrawal et al., ICCV 2019).

Published formats read here (both COCO-style):

- COCO: ``annotations/captions_{train,val}2017.json`` = ``{"images": [{"id", "file_name", "height",
  "width", ...}], "annotations": [{"image_id", "id", "caption"}], ...}``; images
  ``{root}/{train,val}2017/<file_name>``.
- nocaps: ``nocaps_val_4500_captions.json``, the same structure where each image also has
  ``"domain"`` in ``in-domain`` / ``near-domain`` / ``out-domain`` and ``"open_images_id"``;
  images (Open Images V4 validation) ``{root}/validation/<file_name>``. Only the validation split
  has public captions.

One row per image: ``caption`` holds its first reference, ``meta["references"][i]`` all of them
(BLEU-4 / CIDEr need every reference). nocaps's domain is both the row's ``category`` and its
``device``, so in/near/out-domain can be treated as three devices. nocaps has no training
captions: pass ``vocab=`` (e.g. COCO's) to encode with a training vocabulary; otherwise the
vocabulary is built from the nocaps references themselves (``meta["vocab_source"]`` says which).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from paramcast.data.base import IGNORE, Vocab

from ._common import (
    Annotations,
    DatasetLayoutError,
    build_word_vocab,
    empty_text,
    encode_text,
    find_dir,
    make_rows,
    read_json,
    require_file,
)

__all__ = ["NOCAPS_DOMAINS", "read_coco_captions", "read_nocaps"]

NOCAPS_DOMAINS = ["in-domain", "near-domain", "out-domain"]


def _coco_style(path: Path) -> tuple[list[dict], dict[int, list[str]]]:
    data = read_json(path)
    if not {"images", "annotations"} <= set(data):
        raise DatasetLayoutError(f"{path}: expected COCO caption format {{'images': [...], 'annotations': [...]}}")
    refs: dict[int, list[str]] = defaultdict(list)
    for a in data["annotations"]:
        refs[a["image_id"]].append(a["caption"].strip())
    return [im for im in data["images"] if refs.get(im["id"])], refs


def _rows(dataset: str, split: str, images: list[dict], refs: dict[int, list[str]], vocab: Vocab,
          caption_len: int, image_dir: Path, layout: str, domain: torch.Tensor | None,
          vocab_source: str) -> Annotations:
    n = len(images)
    references = [refs[im["id"]] for im in images]
    zeros = torch.zeros(n, dtype=torch.int64)
    out = make_rows(
        question=empty_text(n), answer=torch.full((n,), IGNORE, dtype=torch.int64), answer_text=[""] * n,
        caption=encode_text([r[0] for r in references], vocab.words, caption_len), clip_id=range(n),
        category=domain if domain is not None else zeros, qtype=zeros, device=domain,
        meta={"dataset": dataset, "split": split, "task": "captioning", "image_id": [im["id"] for im in images],
              "references": references, "vocab_source": vocab_source})
    return Annotations(rows=out, vocab=vocab, kind="image", media=[image_dir / im["file_name"] for im in images],
                       layout=layout)


def read_coco_captions(root: str | Path, split: str = "train", *, vocab: Vocab | None = None,
                       max_words: int | None = 10000, caption_len: int = 40, **_: object) -> Annotations:
    """COCO Captions 2017: ``{root}/annotations/captions_{split}2017.json`` and ``{root}/{split}2017/``."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"coco-captions: split {split!r} has no public captions; use 'train' or 'val'")

    def load(s: str):
        return _coco_style(require_file(root, "coco-captions", f"annotations/captions_{s}2017.json",
                                        f"captions_{s}2017.json"))

    images, refs = load(split)
    if vocab is None:
        train_refs = refs if split == "train" else load("train")[1]
        vocab = Vocab(words=build_word_vocab((c for cs in train_refs.values() for c in cs), max_words), answers=[],
                      devices=["all"], categories=["all"], qtypes=["caption"])
    idir = find_dir(root, f"{split}2017", f"images/{split}2017")
    return _rows("coco-captions", split, images, refs, vocab, caption_len, idir,
                 f"COCO 2017 images belong in {idir}/<file_name>", None, "coco-captions train")


def read_nocaps(root: str | Path, split: str = "val", *, vocab: Vocab | None = None,
                max_words: int | None = 10000, caption_len: int = 40, **_: object) -> Annotations:
    """nocaps validation: ``{root}/nocaps_val_4500_captions.json`` and ``{root}/validation/<file_name>``."""
    root = Path(root)
    if split != "val":
        raise ValueError(f"nocaps: split {split!r} has no public captions; use 'val'")
    images, refs = _coco_style(require_file(root, "nocaps", "nocaps_val_4500_captions.json",
                                            "annotations/nocaps_val_4500_captions.json"))
    bad = {im.get("domain") for im in images} - set(NOCAPS_DOMAINS)
    if bad:
        raise DatasetLayoutError(f"nocaps: image 'domain' values {sorted(map(str, bad))} are not {NOCAPS_DOMAINS}")
    source = "given"
    if vocab is None:
        source = "nocaps val references"
        vocab = Vocab(words=build_word_vocab((c for cs in refs.values() for c in cs), max_words), answers=[],
                      devices=list(NOCAPS_DOMAINS), categories=list(NOCAPS_DOMAINS), qtypes=["caption"])
    else:
        vocab = Vocab(words=vocab.words, answers=vocab.answers, devices=list(NOCAPS_DOMAINS),
                      categories=list(NOCAPS_DOMAINS), qtypes=vocab.qtypes or ["caption"])
    domain = torch.tensor([NOCAPS_DOMAINS.index(im["domain"]) for im in images], dtype=torch.int64)
    idir = find_dir(root, "validation", "val", "images")
    return _rows("nocaps", split, images, refs, vocab, caption_len, idir,
                 f"nocaps (Open Images) images belong in {idir}/<file_name>", domain, source)
