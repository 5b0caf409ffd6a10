"""One registry for every method, ours and baselines, keyed by a lower-case name.

    @register("cdc-mmpg")
    class CDCMMPG(Method): ...

    cls = get("cdc-mmpg")

The registry knows nothing of its plugins: it holds what has been registered, nothing else, and imports
no method. :mod:`paramcast.catalog` sits above it: it imports the built-in methods (their
``@register`` decorators run) and builds methods by name or from a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["available", "get", "register"]

_REGISTRY: dict[str, type] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a method reachable as ``get(name)``."""
    if not _NAME.match(name):
        raise ValueError(f"method name {name!r} must be lower-case letters, digits, '-' or '_'")

    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def get(name: str) -> type:
    """The class registered as ``name`` (``KeyError`` naming what is registered if none is)."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available())}") from None


def available() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_REGISTRY)
