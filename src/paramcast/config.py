"""Configs are pydantic dataclasses loaded from YAML, with every error reported at once.

A config class is decorated with :func:`config` (``pydantic.dataclasses.dataclass`` in strict mode,
unknown keys forbidden): pydantic checks the types of every field and reports all problems in one
``ValidationError``; a ``__post_init__`` adds the checks between fields (it runs once the types are
right). :func:`from_dict` turns that error into one :class:`ConfigError` with one ``"path: message"``
line per problem, which ``paramcast validate`` prints.

Strict, because a YAML value of the wrong type is a mistake to report, not to coerce: ``"2"`` or
``true`` are not an ``int``; an ``int`` is accepted for a ``float``. Config classes stay dataclasses
(``dataclasses.asdict`` / ``replace`` keep working; ``replace`` validates again).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass
from pydantic.dataclasses import is_pydantic_dataclass

__all__ = ["ConfigError", "config", "from_dict", "load_yaml", "read_yaml"]

T = TypeVar("T")
STRICT = ConfigDict(strict=True, extra="forbid")
_EXPECTED = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
             "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping"}


class ConfigError(ValueError):
    """One or more problems in a config; ``errors`` lists them as ``"path: message"``."""

    def __init__(self, errors: list[str], source: str = "config"):
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} problem(s)\n  " + "\n  ".join(errors))


def config(cls: type[T]) -> type[T]:
    """Make ``cls`` a config: a strict pydantic dataclass that forbids unknown keys."""
    return _pydantic_dataclass(cls, config=STRICT)


def _path(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _line(cls: type, error: dict[str, Any]) -> str:
    """One pydantic error as ``"path: message"``."""
    where, kind, value = _path(error["loc"]), error["type"], error.get("input")
    if kind in ("missing", "missing_argument", "missing_keyword_argument"):
        return f"{where}: required"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        known = f" (known: {', '.join(f.name for f in dataclasses.fields(cls))})" if len(error["loc"]) == 1 else ""
        return f"{where}: unknown key{known}"
    if kind == "value_error":  # raised by a __post_init__ (or a validator)
        return f"{where or cls.__name__}: {error['ctx']['error']}"
    if kind == "literal_error":
        return f"{where}: {value!r} is not one of {error['ctx']['expected']}"
    if kind in _EXPECTED:
        return f"{where}: expected {_EXPECTED[kind]}, got {type(value).__name__} {value!r}"
    return f"{where}: {error['msg']}"


def from_dict(cls: type[T], data: dict | None, source: str = "config") -> T:
    """Build config ``cls`` from ``data``; raise :class:`ConfigError` listing every problem."""
    data = dict(data or {})
    errors = [f"{key!r}: unknown key (keys are strings)" for key in data if not isinstance(key, str)]
    kwargs = {k: v for k, v in data.items() if isinstance(k, str)}
    obj = None
    if is_pydantic_dataclass(cls):
        try:
            obj = cls(**kwargs)
        except ValidationError as exc:
            errors += [_line(cls, e) for e in exc.errors()]
    else:  # a plain dataclass (the method configs): pydantic validates it and builds its nested configs
        errors += _unknown_keys(cls, kwargs)
        try:
            obj = TypeAdapter(cls).validate_python(kwargs)
        except ValidationError as exc:
            errors += [_line(cls, e) for e in exc.errors()]
        except (TypeError, ValueError) as exc:  # a __post_init__ check
            errors.append(str(exc))
    if errors:
        raise ConfigError(errors, source)
    return obj


def _unknown_keys(cls: type, data: dict, where: str = "") -> list[str]:
    """``"path: unknown key"`` for every key of ``data`` (and of its nested config dicts) that
    plain dataclass ``cls`` lacks (pydantic would drop them silently, e.g. a typo in ``akd={...}``)."""
    import typing

    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    out = []
    for k, v in data.items():
        if k not in known:
            out.append(f"{where}{k}: unknown key (known: {', '.join(sorted(known))})")
        elif isinstance(v, dict) and dataclasses.is_dataclass(hints.get(k)) and not is_pydantic_dataclass(hints[k]):
            out += _unknown_keys(hints[k], v, f"{where}{k}.")
    return out


def read_yaml(path: str | Path) -> dict | None:
    """The mapping in YAML file ``path`` (None when empty); :class:`ConfigError` when it is not one."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"top level must be a mapping, got {type(data).__name__}"], str(path))
    return data


def load_yaml(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, read_yaml(path), str(path))
