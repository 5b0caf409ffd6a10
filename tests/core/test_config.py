from dataclasses import asdict, field, replace
from typing import Literal

import pytest
from pydantic import ValidationError

from paramcast.config import ConfigError, config, from_dict, load_yaml


@config
class Outer:
    name: str
    kind: Literal["a", "b"] = "a"
    epochs: int = 2
    lr: float = 1e-3  # learning rate
    methods: list[str] = field(default_factory=list)
    overrides: dict[str, dict] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}; try 1e-3")


def test_builds_and_coerces_int_to_float_only():
    cfg = from_dict(Outer, {"name": "x", "lr": 1, "methods": ["a"], "overrides": {"m": {"lr": 1}}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.methods == ["a"] and asdict(cfg)["overrides"] == {"m": {"lr": 1}}
    with pytest.raises(ValidationError):  # replace validates again
        replace(cfg, epochs="3")


def test_reports_every_error_at_once_one_line_each():
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"kind": "c", "epochs": "two", "methods": "a", "source": 3, "bogus": 1, 7: 0})
    errors = info.value.errors
    joined = "\n".join(errors)
    assert len(errors) == 7 and all("\n" not in e for e in errors), joined
    for needle in ("name: required", "kind: 'c' is not one of", "epochs: expected int, got str 'two'",
                   "methods: expected a list", "source: expected str, got int 3",
                   "bogus: unknown key (known: name, kind, epochs", "7: unknown key"):
        assert needle in joined
    assert str(info.value).startswith("config: 7 problem(s)\n  ")


def test_post_init_checks_run_once_the_types_are_right():
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"name": "x", "lr": -1})
    assert info.value.errors == ["Outer: lr must be > 0, got -1.0; try 1e-3"]


def test_bool_and_numeric_strings_are_not_ints():
    for value in (True, "2", 2.0):
        with pytest.raises(ConfigError, match="epochs: expected int"):
            from_dict(Outer, {"name": "x", "epochs": value})


def test_load_yaml_rejects_non_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(Outer, p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, p)


def test_build_config_nested_overrides_merge_and_dict_configs_build_nested(tmp_path):
    """The shared builder every method uses: a nested config overridden by a dict, a checkpoint's dict config."""
    import dataclasses
    import json

    from paramcast import catalog
    from paramcast.models.training import build_config

    @dataclasses.dataclass(frozen=True)
    class Inner:
        steps: int = 1
        lr: float = 0.1

    @dataclasses.dataclass(frozen=True)
    class Method:                                  # not CD-CCA: any method config with a nested one
        hidden: int = 8
        inner: Inner = dataclasses.field(default_factory=Inner)
        table: dict = dataclasses.field(default_factory=lambda: {"a": 1})

    base = Method(hidden=4, inner=Inner(steps=3, lr=0.5))
    got = build_config(Method, base, {"inner": {"steps": 7}, "table": {"b": 2}})
    assert got == Method(hidden=4, inner=Inner(steps=7, lr=0.5), table={"b": 2})   # merged; a dict field replaced
    assert build_config(Method, None, {"inner": {"lr": 1}}).inner == Inner(steps=1, lr=1.0)
    built = build_config(Method, {"hidden": 2, "inner": {"steps": 5}}, {})
    assert isinstance(built.inner, Inner) and built.inner.steps == 5               # not left a dict
    with pytest.raises(ConfigError, match="inner.steps"):
        build_config(Method, None, {"inner": {"steps": "many"}})
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(Method, None, {"inner": {"bogus": 1}})
    with pytest.raises(TypeError, match="no field"):
        build_config(Method, None, {"bogus": 1})
    # every registered method's config survives the checkpoint round trip (JSON: tuples become lists)
    for name in catalog.available():
        cls = getattr(catalog.get(name), "config_class", None)   # (other tests register toy methods)
        if dataclasses.is_dataclass(cls):
            assert build_config(cls, json.loads(json.dumps(dataclasses.asdict(cls()))), {}) == cls(), name
    cd = catalog.get("cd-cca").config_class
    cfg = build_config(cd, dataclasses.replace(cd(), akd=dataclasses.replace(cd().akd, lr=0.123)), {"akd": {"steps": 2}})
    assert cfg.akd.steps == 2 and cfg.akd.lr == 0.123 and cfg.uts == cd().uts
