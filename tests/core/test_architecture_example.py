"""docs/architecture.md's "Adding a method" example runs as it is written: it registers a method,
trains it, saves and rebuilds it from the checkpoint, serves it and adapts a device over the API."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from paramcast import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_add_a_method_example_registers_trains_serves(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2
    method_lines = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(method_lines) <= 40  # the method itself stays short (imports included)
    ns: dict = {"tmp": tmp_path}
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
        status, answers = capsys.readouterr().out.split(maxsplit=1)
        assert status == "200"
        method, served = ns["method"], ns["served"]
        assert type(served) is type(method) and served.name == "mean-head"
        # the served checkpoint generates exactly the head the trained method generates
        up = method.device_step(ns["shots"])
        torch.testing.assert_close(served.cloud_step(up).weight, method.cloud_step(up).weight)
        # the installed head is the generated one, not the zero head of reset()
        assert method.weight.abs().sum() > 0 and len(eval(answers)) == 8  # noqa: S307 - a printed list
    finally:
        registry._REGISTRY.pop("mean-head", None)
