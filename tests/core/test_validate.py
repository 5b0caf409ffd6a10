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
