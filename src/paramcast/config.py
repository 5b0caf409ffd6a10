"""Dataclass configs loaded from YAML, with every error reported at once.

A config is a plain (possibly nested) dataclass. :func:`from_dict` builds it from a mapping and
collects *all* problems — unknown keys, wrong types, values a ``__post_init__`` rejects — into one
:class:`ConfigError`, so ``paramcast validate`` can show everything that is wrong in one pass.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigError", "from_dict", "load_yaml", "to_dict"]

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more problems in a config; ``errors`` lists them as ``"path: message"``."""

    def __init__(self, errors: list[str], source: str = "config"):
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} problem(s)\n  " + "\n  ".join(errors))


def _check_type(value: Any, tp: Any, where: str, errors: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
            return None
        return _build(tp, value, where, errors)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial: list[str] = []
            out = _check_type(value, arg, where, trial)
            if not trial:
                return out
        errors.append(f"{where}: {value!r} is not a {tp}")
        return None
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            errors.append(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            errors.append(f"{where}: expected a list, got {type(value).__name__}")
            return None
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]", errors) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return None
        _, vt = typing.get_args(tp) or (Any, Any)
        return {k: _check_type(v, vt, f"{where}.{k}", errors) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type):
        if tp is not bool and isinstance(value, bool) or not isinstance(value, tp):
            errors.append(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
            return None
    return value


def _build(cls: type[T], data: dict, where: str, errors: list[str]) -> T | None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    n_before = len(errors)
    for key in data:
        if key not in fields:
            errors.append(f"{where}.{key}: unknown key (known: {', '.join(fields)})".lstrip("."))
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], f"{where}.{name}".lstrip("."), errors)
        elif fields[name].default is dataclasses.MISSING and fields[name].default_factory is dataclasses.MISSING:
            errors.append(f"{where}.{name}: required".lstrip("."))
    if len(errors) > n_before:
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        errors.append(f"{where or cls.__name__}: {exc}")
        return None


def from_dict(cls: type[T], data: dict | None, source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; raise :class:`ConfigError` listing every problem."""
    errors: list[str] = []
    obj = _build(cls, data or {}, "", errors)
    if errors:
        raise ConfigError(errors, source)
    return obj  # type: ignore[return-value]


def load_yaml(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"top level must be a mapping, got {type(data).__name__}"], str(path))
    return from_dict(cls, data, str(path))


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)
