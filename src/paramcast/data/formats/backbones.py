"""Pretrained ViT / BERT backbones from local directories (nothing is downloaded).

A directory is what ``save_pretrained`` writes (or a snapshot of a hub repository): ``config.json``
plus ``model.safetensors`` (or ``pytorch_model.bin``, possibly sharded with an ``*.index.json``).
transformers 5 names ViT attention ``q_proj/k_proj/v_proj/o_proj``; an older checkpoint's
``query/key/value`` keys are converted by transformers itself when it loads them.
"""

from __future__ import annotations

from pathlib import Path

from ._common import DatasetLayoutError

__all__ = ["load_local_backbones"]

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _check_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetLayoutError(f"{what} directory {path} does not exist (expected a save_pretrained directory)")
    if not (path / "config.json").is_file():
        raise DatasetLayoutError(f"{what} directory {path} has no config.json (expected a save_pretrained directory)")
    if not any((path / w).is_file() for w in _WEIGHTS):
        raise DatasetLayoutError(f"{what} directory {path} has no weights: expected one of {', '.join(_WEIGHTS)}")
    return path


def load_local_backbones(vit_dir: str | Path | None = None, bert_dir: str | Path | None = None):
    """``(vit, bert)``: a ``ViTModel`` (DeiT checkpoints load as ViT) and a ``BertModel``, or None when not asked.

    Raises :class:`DatasetLayoutError` naming the directory when it lacks ``config.json`` or weights.
    To build paramcast's encoder from them use ``AllInOneEncoder.from_pretrained(vit_dir, bert_dir)``.
    """
    from transformers import BertModel, ViTModel

    vit = bert = None
    if vit_dir is not None:
        vit = ViTModel.from_pretrained(str(_check_dir(vit_dir, "ViT")), local_files_only=True,
                                       add_pooling_layer=False)
    if bert_dir is not None:
        bert = BertModel.from_pretrained(str(_check_dir(bert_dir, "BERT")), local_files_only=True)
    return vit, bert
