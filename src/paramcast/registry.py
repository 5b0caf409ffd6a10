"""One registry for every method, ours and baselines, keyed by a lower-case name.

    @register("cdc-mmpg")
    class CDCMMPG(Method): ...

    method = create("cdc-mmpg", encoder=..., num_answers=...)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["available", "create", "from_checkpoint", "get", "register"]

_REGISTRY: dict[str, type] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a method reachable as ``create(name, ...)``."""
    if not _NAME.match(name):
        raise ValueError(f"method name {name!r} must be lower-case letters, digits, '-' or '_'")

    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def _load_builtin() -> None:
    # Importing the packages runs their @register decorators.
    import paramcast.baselines  # noqa: F401
    import paramcast.methods  # noqa: F401


def get(name: str) -> type:
    _load_builtin()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available())}") from None


def create(name: str, /, **kwargs):
    return get(name)(**kwargs)


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def from_checkpoint(path, /, **kwargs):
    """Rebuild a method from :meth:`Method.save_checkpoint`'s file: its class, shapes and config come
    from the file's metadata; ``kwargs`` (e.g. ``device``) are passed to the constructor too."""
    from paramcast.methods.base import read_checkpoint

    meta, tensors = read_checkpoint(path)
    method = create(meta["method"], **(meta["args"] | kwargs))
    method.load_state(meta, tensors, source=str(path))
    return method
