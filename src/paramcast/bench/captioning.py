"""Captioning metrics: BLEU-4 and CIDEr(-D) from pycocoevalcap (the COCO caption evaluation code).

Both scorers are pure Python (no Java). Captions here are already tokenised word sequences, so the
PTB tokenizer (Java) is not needed. CIDEr's document frequencies come from the references of the
evaluated set, as in the COCO evaluation server.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bleu4", "caption_scores", "cider"]


def _scorers():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("captioning metrics need pycocoevalcap: pip install 'pycocoevalcap>=1.2,<1.3'") from exc
    return Bleu, Cider


def _dicts(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]):
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references: give one entry per image")
    res = {i: [h if h.strip() else "<empty>"] for i, h in enumerate(hyps)}
    gts = {i: [r] if isinstance(r, str) else list(r) for i, r in enumerate(refs)}
    return gts, res


def bleu4(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1] (pycocoevalcap ``Bleu(4)``, 'closest' reference length)."""
    if not hyps:
        return float("nan")
    Bleu, _ = _scorers()
    score, _ = Bleu(4).compute_score(*_dicts(hyps, refs), verbose=0)
    return float(score[3])


def cider(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """CIDEr-D (pycocoevalcap ``Cider``: sigma 6, clipping, x10); 10 = every caption matches exactly."""
    if not hyps:
        return float("nan")
    _, Cider = _scorers()
    score, _ = Cider().compute_score(*_dicts(hyps, refs))
    return float(score)


def caption_scores(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """``{"BLEU4": ..., "CIDEr": ...}`` in percent, as the seed's Table 2 reports them."""
    return {"BLEU4": 100 * bleu4(hyps, refs), "CIDEr": 100 * cider(hyps, refs)}
