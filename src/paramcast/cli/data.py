"""``paramcast data ...``: prepare / card / show for EmojiClips."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
console = Console()

_PRESET = typer.Option("quick", "--preset", "-p", help="Preset: standard (benchmark), quick (CI/demo), tiny (unit tests).")
_SOURCE = typer.Option(None, "--source", "-s", help="Sprites: 'emoji' (real art from Debian packages) or "
                       "'shapes' (procedural). Default: the preset's source.")
_SEED = typer.Option(0, "--seed", help="Seed of devices, clips, questions and camera noise.")
_ROOT = typer.Option(None, "--root", help="Data root. Default: $PARAMCAST_DATA or ./data.")


def _load(preset: str, source: str | None, seed: int, root: Path | None):
    from paramcast.data.emojiclips import PRESETS, AssetsMissing, load

    if preset not in PRESETS:
        console.print(f"[red]unknown preset {preset!r}[/]: use one of {', '.join(PRESETS)}")
        raise typer.Exit(2)
    try:
        return load(preset, source=source, seed=seed, root=root, progress=True)
    except (AssetsMissing, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@app.command()
def prepare(preset: str = _PRESET, source: str | None = _SOURCE, seed: int = _SEED, root: Path | None = _ROOT) -> None:
    """Obtain the real assets (for --source emoji) and build + cache the preset."""
    from paramcast.data.emojiclips import PRESETS, AssetsMissing
    from paramcast.data.emojiclips._assets import obtain_assets
    from paramcast.data.emojiclips.dataset import data_root

    src = source or (PRESETS[preset].source if preset in PRESETS else None)
    if src == "emoji":
        try:
            assets = obtain_assets(data_root(root), log=lambda m: console.print(f"[cyan]{m}[/]"))
        except AssetsMissing as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        console.print(f"assets: {assets.gemojione}, {assets.noto}, {assets.symbola}")
    ds = _load(preset, source, seed, root)
    how = "loaded from cache" if ds.from_cache else f"built in {ds.info.get('build_seconds')} s"
    console.print(f"[green]EmojiClips {preset}/{ds.config.source}[/] {how}: {ds.path}")
    console.print(f"  history {len(ds.history)} rows, new {len(ds.new)}, unseen {len(ds.unseen)}; "
                  f"{len(ds.vocab.devices)} devices, {len(ds.vocab.answers)} answer classes, "
                  f"{len(ds.vocab.words)} words")


@app.command()
def card(preset: str = _PRESET, source: str | None = _SOURCE, seed: int = _SEED, root: Path | None = _ROOT) -> None:
    """Write the Markdown dataset card to <root>/<preset>/card.md and print it (builds the preset if needed)."""
    from rich.markdown import Markdown

    from paramcast.data.emojiclips.card import dataset_card
    from paramcast.data.emojiclips.dataset import data_root

    ds = _load(preset, source, seed, root)
    text = dataset_card(ds)
    path = data_root(root) / preset / "card.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(Markdown(text))
    console.print(f"[green]wrote {path}[/]")


@app.command()
def show(preset: str = _PRESET, source: str | None = _SOURCE, seed: int = _SEED, root: Path | None = _ROOT,
         clips: int = typer.Option(2, help="Clips per device."),
         out: Path | None = typer.Option(None, help="PNG path. Default: <root>/<preset>/contact_sheet.png.")) -> None:
    """Save a PNG contact sheet: a few clips per device, frames side by side, device names as labels."""
    from paramcast.data.emojiclips.card import contact_sheet
    from paramcast.data.emojiclips.dataset import data_root

    ds = _load(preset, source, seed, root)
    path = contact_sheet(ds, out or data_root(root) / preset / "contact_sheet.png", clips_per_device=clips)
    console.print(f"[green]wrote {path}[/]")
