"""Benchmark configs: ``benchmarks/<task>/<name>.yaml``, each with the command that runs it in its header.

The YAML's ``task`` key picks the config dataclass; everything else must match that dataclass.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from paramcast.config import ConfigError, from_dict

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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if not isinstance(data, dict) or "task" not in data:
        raise ConfigError(["top level must be a mapping with a 'task' key"], str(path))
    data = dict(data)
    task = data.pop("task")
    try:
        cls = config_class(task)
    except ConfigError as exc:
        raise ConfigError(exc.errors, str(path)) from None
    return from_dict(cls, data, str(path))
