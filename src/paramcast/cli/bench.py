"""``paramcast bench ...``: every benchmark writes JSON + Markdown (and a PNG where a plot helps)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def netsim(
    paper: bool = typer.Option(False, "--paper", help="Reproduce CDC-MMPG's Table 6 (seed shapes, no RTT)."),
    answers: int = typer.Option(1500, help="Answer vocabulary V of the generated 96→V head (without --paper)."),
    rtt_ms: float = typer.Option(0.0, help="Round-trip time added once per adaptation."),
    out: Path = typer.Option(Path("runs/netsim"), help="Result path stem (.json/.md are written)."),
) -> None:
    """Payload sizes (from tensor shapes) and ideal transfer times per network profile (MB = 1024² B)."""
    from paramcast.bench.netsim import PAPER_PROFILES, PROFILES, paper_table, transfer_ms
    from paramcast.bench.report import markdown_table, write_result

    if paper:
        rows = paper_table()
        profiles = PAPER_PROFILES
    else:
        profiles = PROFILES
        rows = []
        for row in paper_table(heads={f"V={answers}": answers}):
            nbytes = row["size_kb"] * 1024
            rows.append({**{k: row[k] for k in ("dataset", "direction", "size_kb")},
                         **{f"{p.name}_ms": transfer_ms(int(nbytes), 0, p, rtt_ms) for p in profiles.values()}})
    cols = ["dataset", "direction", "size_kb", *(f"{p}_ms" for p in profiles)]
    md = markdown_table(rows, cols)
    console.print(md)
    paths = write_result({"paper": paper, "rtt_ms": rtt_ms, "rows": rows}, out, md)
    console.print(f"wrote {paths['json']}")
