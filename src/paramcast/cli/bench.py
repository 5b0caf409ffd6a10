"""``paramcast bench ...``: every benchmark writes Markdown, JSON and (where useful) a PNG."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
