"""The built-in methods, and methods built by name or from a checkpoint.

:mod:`paramcast.registry` only records what registered itself; this module imports the built-in
method packages (:mod:`paramcast.methods`, :mod:`paramcast.baselines`: their ``@register``
decorators run) before asking it, so ``create("cd-cca", ...)`` works without importing anything
else. A plugin (``paramcast serve --plugin MODULE``) registers its own methods when imported.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from paramcast import registry

__all__ = ["BUILTIN", "available", "create", "from_checkpoint", "get", "load_builtin"]

#: Each built-in method and the module whose import registers it. ``get`` imports only the one a
#: name needs (a video-QA service never loads peft and the MLLMs); ``available`` imports them all.
BUILTIN: dict[str, str] = {
    "source-only": "paramcast.baselines.source_only",
    "f-linear": "paramcast.baselines.finetune",
    "fine-tuning": "paramcast.baselines.finetune",
    "f-hyper": "paramcast.baselines.f_hyper",
    "duet": "paramcast.baselines.duet",
    "cdc-mmpg": "paramcast.methods.cdc_mmpg.model",
    "stablesynthnet": "paramcast.methods.stablesynthnet.model",
    "mllm-source-only": "paramcast.methods.cd_cca.method",
    "cd-cca": "paramcast.methods.cd_cca.method",
    "pkd": "paramcast.baselines.kd",
    "cwd": "paramcast.baselines.kd",
    "tent": "paramcast.baselines.tta",
    "cotta": "paramcast.baselines.tta",
}


def load_builtin() -> None:
    """Import every built-in method (idempotent)."""
    for module in sorted(set(BUILTIN.values())):
        importlib.import_module(module)


def get(name: str) -> type:
    key = name.lower()
    if key not in registry.available():
        if key in BUILTIN:
            importlib.import_module(BUILTIN[key])
        else:
            load_builtin()  # for the KeyError's list of what exists
    return registry.get(key)


def available() -> list[str]:
    load_builtin()
    return registry.available()


def create(name: str, /, **kwargs: Any):
    """``get(name)(**kwargs)``."""
    return get(name)(**kwargs)


def from_checkpoint(path: str | Path, /, **kwargs: Any):
    """Rebuild a method from :meth:`~paramcast.methods.base.Method.save_checkpoint`'s file: its class,
    shapes and config come from the file's metadata; ``kwargs`` (e.g. ``device``) are passed to the
    constructor too."""
    from paramcast.methods.base import read_checkpoint

    meta, tensors = read_checkpoint(path)
    method = create(meta["method"], **(meta["args"] | kwargs))
    method.load_state(meta, tensors, source=str(path))
    return method
