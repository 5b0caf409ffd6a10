"""``paramcast validate``: check every benchmark config at once."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from paramcast.config import ConfigError

console = Console()


def validate(
    root: Path = typer.Argument(Path("benchmarks"), help="Folder searched recursively for *.yaml configs."),
) -> None:
    from paramcast.bench.config import load_bench_config

    paths = sorted(root.rglob("*.yaml"))
    if not paths:
        console.print(f"[yellow]no YAML configs under {root}[/]")
        raise typer.Exit(1)
    failed = 0
    for path in paths:
        try:
            load_bench_config(path)
        except ConfigError as exc:
            failed += 1
            console.print(f"[red]✗ {path}[/]")
            for err in exc.errors:
                console.print(f"    {err}")
        else:
            console.print(f"[green]✓ {path}[/]")
    console.print(f"{len(paths) - failed} valid, {failed} invalid")
    if failed:
        raise typer.Exit(1)
