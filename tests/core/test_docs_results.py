"""Docs tables are the committed results' Markdown (paramcast.bench.docs), never typed by hand."""

from pathlib import Path

import pytest

from paramcast.bench.docs import splice, stale

ROOT = Path(__file__).resolve().parents[2]


def test_every_docs_result_block_matches_its_file():
    assert stale(ROOT) == [], "docs blocks differ from benchmarks/results: run python -m paramcast.bench.docs"


def test_splice_replaces_only_the_marked_block(tmp_path):
    (tmp_path / "r.md").write_text("| a |\n|---|\n| 1 |\n")
    page = "intro\n<!-- result: r.md -->\nold table\n<!-- result:end -->\noutro\n"
    assert splice(page, tmp_path) == "intro\n<!-- result: r.md -->\n| a |\n|---|\n| 1 |\n<!-- result:end -->\noutro\n"


def test_splice_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.md"):
        splice("<!-- result: gone.md -->\nx\n<!-- result:end -->", tmp_path)
