"""The built-in methods, and methods built by name or from a checkpoint.

:mod:`paramcast.registry` only records what registered itself; this module imports the built-in
method packages (:mod:`paramcast.methods`, :mod:`paramcast.baselines`: their ``@register``
decorators run) before asking it, so ``create("cd-cca", ...)`` works without importing anything
else. A plugin (``paramcast serve --plugin MODULE``) registers its own methods when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paramcast import registry

__all__ = ["available", "create", "from_checkpoint", "get", "load_builtin"]


def load_builtin() -> None:
    """Import the built-in methods (idempotent)."""
    import paramcast.baselines  # noqa: F401
    import paramcast.methods  # noqa: F401


def get(name: str) -> type:
    load_builtin()
    return registry.get(name)


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
