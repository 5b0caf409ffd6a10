"""Writing benchmark results: a JSON with the command that produced it, a Markdown table, a PNG.

Every benchmark returns a JSON-able dict; :func:`write_result` stores it next to its Markdown and
records the exact command line, the package version and the machine, so a committed result can be
regenerated and compared.
"""

from __future__ import annotations

import json
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "markdown_table", "save_figure", "verdict", "write_result"]


def environment() -> dict[str, Any]:
    from paramcast import __version__

    return {
        "paramcast": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        **_cpu(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _cpu() -> dict[str, Any]:
    """The CPU's model and what torch's kernels may use on it: speed figures (bf16 above all, which runs
    natively only with AVX512-BF16 or AMX and is emulated, many times slower than fp32, elsewhere) are
    read against them."""
    # the one reader of /proc/cpuinfo; imported here, as importing it loads the method
    from paramcast.methods.cdc_mmpg.serving import cpuinfo

    model, flags = cpuinfo() or (None, frozenset())  # not Linux: the model from platform, no flags
    return {"cpu": model or platform.processor() or None, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"})}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        if abs(v) >= 1000 or (abs(v) < 0.01 and v != 0):
            return f"{v:.3g}"
        return f"{v:.2f}"
    return "–" if v is None else str(v)


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": list(values)}


def verdict(mean: float, std: float, relation: str, margin: float = 0.0) -> bool:
    """Does a seed's claim hold, from the paired difference A - B over seeds (mean, sample std)? The rule,
    fixed before reading any result (and the same for every seed's claims):

    * ``A > B`` holds when mean - std > margin (positive beyond the usual spread of the seeds);
    * ``A ≥ B`` holds when mean + std >= margin (not below it beyond that spread; a cost of at most
      0.5 point is ``A ≥ B`` with margin -0.5);
    * ``A ≫ B`` holds when mean - std >= 5 points;
    * ``A ≈ B`` ("within ±margin") holds when |mean| <= margin.
    """
    if relation == ">":
        return mean - std > margin
    if relation == "≥":
        return mean + std >= margin
    if relation == "≫":
        return mean - std >= 5.0
    if relation == "≈":
        return abs(mean) <= margin
    raise ValueError(f"relation {relation!r}: use >, ≥, ≫ or ≈")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table; ``columns`` picks and orders keys (default: the first row's)."""
    if not rows:
        return "(no rows)\n"
    cols = list(columns or rows[0].keys())
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_result(result: dict[str, Any], out: Path, markdown: str) -> dict[str, Path]:
    """Write ``out.with_suffix('.json')`` and ``.md``; return the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["paramcast", *sys.argv[1:]] if Path(sys.argv[0]).name in ("paramcast", "__main__.py") else sys.argv
    if argv and argv[0].endswith(".py"):                      # a script: say how it was run
        argv = ["python", *argv]
    payload = {"command": shlex.join(argv), "environment": environment(), **result}
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    md_path.write_text(f"<!-- produced by: {payload['command']} -->\n\n{markdown}")
    return {"json": json_path, "markdown": md_path}


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
