from pathlib import Path

import pytest

from paramcast.bench.config import load_bench_config
from paramcast.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").rglob("*.yaml")), ids=lambda p: p.name)
def test_committed_configs_are_valid_and_say_their_command(path):
    load_bench_config(path)
    assert "paramcast bench" in path.read_text().split("task:")[0], "config header must show its command"


def test_all_errors_reported_together(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: videoqa\npreset: huge\nk: 0\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_bench_config(bad)
    text = str(info.value)
    assert "bogus: unknown key" in text


def test_unknown_task(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: nope\n")
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_bench_config(bad)


def test_base_config_keys_are_replaced_one_by_one(tmp_path):
    (tmp_path / "main.yaml").write_text("task: videoqa\npreset: tiny\nepochs: 3\nmethods: [source-only]\n")
    (tmp_path / "study.yaml").write_text("task: videoqa\nbase: main.yaml\nmethods: [f-linear]\n")
    cfg = load_bench_config(tmp_path / "study.yaml")
    assert (cfg.preset, cfg.epochs, cfg.methods) == ("tiny", 3, ["f-linear"])


def test_base_missing_or_cyclic_is_a_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("task: videoqa\nbase: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="not found"):
        load_bench_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("task: videoqa\nbase: c.yaml\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_bench_config(tmp_path / "b.yaml")
