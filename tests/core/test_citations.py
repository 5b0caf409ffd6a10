"""Source comments cite files that exist in the repository (docs/design.md holds the design brief)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"(?<![\w/.])((?:docs|benchmarks|tests|clients)/[\w./-]+\.(?:md|py|json|yaml|js|png))")
BUILT = ("clients/node/dist/",)  # build outputs (make node-client), not citations


def test_every_cited_file_exists():
    missing = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = path.read_text()
        missing += [f"{path.relative_to(ROOT)}: DESIGN.md" for _ in re.finditer(r"(?<![\w/])DESIGN\.md", text)]
        missing += [f"{path.relative_to(ROOT)}: {m}" for m in CITED.findall(text)
                    if not m.startswith(BUILT) and not (ROOT / m.rstrip(".")).exists()]
    assert not missing, missing
