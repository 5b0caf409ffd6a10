"""Benchmark configs: ``benchmarks/<task>/<name>.yaml``, each with the command that runs it in its header.

The YAML's ``task`` key picks the config dataclass; everything else must match that dataclass.
``base: other.yaml`` (a path next to the file) starts from that config's keys, which this file's keys
replace one by one: a study that must share the main comparison's data, encoder and budget
(``standard_variants.yaml``) names it once instead of copying it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from paramcast.config import ConfigError, from_dict, read_yaml

__all__ = ["TASKS", "load_bench_config"]

#: task name -> "module:ConfigClass" (imported lazily: a task's heavy modules load only when used)
TASKS: dict[str, str] = {
    "videoqa": "paramcast.bench.videoqa:VideoQABenchConfig",
}


def config_class(task: str) -> type:
    if task not in TASKS:
        raise ConfigError([f"task: unknown task {task!r}; known: {', '.join(sorted(TASKS))}"])
    module, cls = TASKS[task].split(":")
    return getattr(importlib.import_module(module), cls)


def load_bench_config(path: str | Path) -> Any:
    """Load and validate one benchmark YAML; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    data = _mapping(path)
    if "task" not in data:
        raise ConfigError(["top level must be a mapping with a 'task' key"], str(path))
    task = data.pop("task")
    try:
        cls = config_class(task)
    except ConfigError as exc:
        raise ConfigError(exc.errors, str(path)) from None
    return from_dict(cls, data, str(path))


def _mapping(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of ``path`` with its ``base`` chain merged under it (this file's keys win)."""
    if path.resolve() in seen:
        raise ConfigError([f"base: {path} is its own base (a cycle)"], str(seen[0]))
    data = dict(read_yaml(path) or {})
    base = data.pop("base", None)
    if base is None:
        return data
    parent = path.parent / str(base)
    if not parent.exists():
        raise ConfigError([f"base: {base!r} not found next to the file ({parent})"], str(path))
    return _mapping(parent, (*seen, path.resolve())) | data
