"""``paramcast --help`` answers without loading torch, transformers or the methods (the CLI imports a
subcommand when it runs: paramcast.cli._lazy). Checked in a fresh interpreter by what it imported, not by time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("torch", "transformers", "safetensors", "paramcast.methods", "paramcast.registry", "paramcast.bench")


def _imported(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code + f"\nimport json, sys\nprint(json.dumps("
                          f"[m for m in {HEAVY!r} if m in sys.modules]))"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_torch():
    assert _imported("import paramcast.cli.main") == []


def test_help_of_the_command_and_its_groups_loads_no_torch():
    code = ("from typer.testing import CliRunner\nfrom paramcast.cli.main import app\n"
            "for args in (['--help'], ['bench', '--help'], ['serve', '--help'], ['validate', '--help']):\n"
            "    r = CliRunner().invoke(app, args)\n"
            "    assert r.exit_code == 0 and 'Usage' in r.output, (args, r.output)\n")
    assert _imported(code) == []


def test_a_command_still_loads_what_it_needs():
    code = ("import paramcast, paramcast.cli.main\nassert 'torch' not in __import__('sys').modules\n"
            "assert paramcast.Upload.__name__ == 'Upload'  # lazy names resolve on first use\n")
    assert "torch" in _imported(code)
