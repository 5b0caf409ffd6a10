from dataclasses import dataclass, field
from typing import Literal

import pytest

from paramcast.config import ConfigError, from_dict, load_yaml


@dataclass
class Inner:
    lr: float = 1e-3  # learning rate

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}; try 1e-3")


@dataclass
class Outer:
    name: str
    kind: Literal["a", "b"] = "a"
    epochs: int = 2
    inner: Inner = field(default_factory=Inner)
    methods: list[str] = field(default_factory=list)


def test_builds_nested_and_coerces_int_to_float():
    cfg = from_dict(Outer, {"name": "x", "inner": {"lr": 1}, "methods": ["a"]})
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.methods == ["a"]


def test_reports_every_error_at_once():
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"kind": "c", "epochs": "two", "inner": {"lr": -1}, "bogus": 1})
    errors = info.value.errors
    joined = "\n".join(errors)
    assert len(errors) == 5, joined
    for needle in ("name: required", "kind:", "epochs: expected int", "lr must be > 0", "bogus: unknown key"):
        assert needle in joined


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="epochs: expected int"):
        from_dict(Outer, {"name": "x", "epochs": True})


def test_load_yaml_rejects_non_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(Outer, p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, p)
