"""Docs tables come from the committed results, not from a keyboard.

A docs page marks where a result's Markdown goes::

    <!-- result: benchmarks/results/mcqa_quick.md -->
    ...replaced by that file's text...
    <!-- result:end -->

``python -m paramcast.bench.docs`` rewrites every marked block under ``docs/`` and ``README.md`` from the
files (each written by :func:`paramcast.bench.report.write_result` next to its JSON, with the command
that produced it); ``--check`` only reports stale blocks and exits 1 (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["splice", "stale"]

_BLOCK = re.compile(r"(<!-- result: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- result:end -->)", re.S)


def splice(text: str, root: Path) -> str:
    """``text`` with every marked block replaced by its file's current content."""

    def fill(m: re.Match) -> str:
        src = root / m["path"]
        if not src.is_file():
            raise FileNotFoundError(f"docs block names {m['path']}, which does not exist")
        return m.group(1) + src.read_text().rstrip("\n") + "\n" + m.group(4)

    return _BLOCK.sub(fill, text)


def _pages(root: Path) -> list[Path]:
    return sorted((root / "docs").glob("*.md")) + [root / "README.md"]


def stale(root: Path) -> list[Path]:
    """The pages whose marked blocks differ from the result files."""
    return [p for p in _pages(root) if p.is_file() and splice(p.read_text(), root) != p.read_text()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="the repository root (default: .)")
    ap.add_argument("--check", action="store_true", help="only list stale pages; exit 1 if any")
    args = ap.parse_args(argv)
    root = Path(args.root)
    pages = stale(root)
    for p in pages:
        if args.check:
            print(f"stale: {p} (run: python -m paramcast.bench.docs)")
        else:
            p.write_text(splice(p.read_text(), root))
            print(f"rewrote {p}")
    return 1 if args.check and pages else 0


if __name__ == "__main__":
    sys.exit(main())
