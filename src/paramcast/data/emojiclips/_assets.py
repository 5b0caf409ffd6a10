"""Locate (and, as root with apt, obtain) the real emoji art of the ``emoji`` source.

- EmojiOne PNGs + names/categories/keywords: Debian package ``ruby-gemojione``, unpacked with
  ``apt-get download`` + ``dpkg -x`` into ``<root>/assets/`` (Ruby itself is never installed).
- Noto Color Emoji: ``fonts-noto-color-emoji``.  Symbola: ``fonts-symbola``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AssetsMissing", "EmojiAssets", "find_assets", "obtain_assets"]

_GEMOJIONE_GLOB = "**/gemojione-*/config/index.json"
_NOTO = ["/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"]
_SYMBOLA = ["/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
            "/usr/share/fonts/truetype/ancient-scripts/Symbola.ttf"]


class AssetsMissing(RuntimeError):
    """The ``emoji`` source lacks OS assets; the message lists what is missing and how to get it."""


@dataclass(frozen=True)
class EmojiAssets:
    gemojione: Path   # gem folder holding config/index.json and assets/png/
    noto: Path        # NotoColorEmoji.ttf
    symbola: Path     # Symbola .ttf


def _first(paths: list[str]) -> Path | None:
    for p in paths:
        if Path(p).is_file():
            return Path(p)
    return None


def _find_gemojione(root: Path) -> Path | None:
    for base in (root / "assets", Path("/usr/share/rubygems-integration/all/gems")):
        hits = sorted(glob.glob(str(base / _GEMOJIONE_GLOB), recursive=True))
        if hits:
            return Path(hits[-1]).parent.parent
    return None


def _find_fonts() -> tuple[Path | None, Path | None]:
    noto = _first(_NOTO) or _first(sorted(glob.glob("/usr/share/fonts/**/NotoColorEmoji*.ttf", recursive=True)))
    symbola = _first(_SYMBOLA) or _first(sorted(glob.glob("/usr/share/fonts/**/Symbola*.[ot]tf", recursive=True)))
    return noto, symbola


def _instructions(root: Path, missing: list[str]) -> str:
    lines = ["The 'emoji' source of EmojiClips needs real emoji art from Debian packages; missing:"]
    lines += [f"  - {m}" for m in missing]
    lines += ["Get them with (as root, on Debian/Ubuntu):",
              "  apt-get update",
              f"  cd /tmp && apt-get download ruby-gemojione && dpkg -x ruby-gemojione_*.deb {root / 'assets' / 'gemojione'}",
              "  apt-get install -y fonts-noto-color-emoji fonts-symbola",
              "or run `paramcast data prepare --source emoji` as root, or use `--source shapes` (no OS assets)."]
    return "\n".join(lines)


def find_assets(root: Path) -> EmojiAssets:
    """The assets, or :class:`AssetsMissing` naming each missing one and the commands that fetch it."""
    gem = _find_gemojione(root)
    noto, symbola = _find_fonts()
    missing = []
    if gem is None:
        missing.append(f"EmojiOne art (package ruby-gemojione) under {root / 'assets'}")
    if noto is None:
        missing.append("Noto Color Emoji font (package fonts-noto-color-emoji)")
    if symbola is None:
        missing.append("Symbola font (package fonts-symbola)")
    if missing:
        raise AssetsMissing(_instructions(root, missing))
    return EmojiAssets(gem, noto, symbola)


def _run(cmd: list[str], cwd: str | None = None) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if res.returncode != 0:
        raise AssetsMissing(f"`{' '.join(cmd)}` failed:\n{res.stderr.strip()[-2000:]}")


def obtain_assets(root: Path, log=print) -> EmojiAssets:
    """Find the assets; fetch missing ones with apt when running as root, else raise with instructions."""
    try:
        return find_assets(root)
    except AssetsMissing as exc:
        can_apt = shutil.which("apt-get") and shutil.which("dpkg") and os.geteuid() == 0
        if not can_apt:
            why = "apt-get/dpkg not found" if not shutil.which("apt-get") else "not running as root"
            raise AssetsMissing(f"{exc}\n(cannot fetch them automatically: {why})") from None
    gem = _find_gemojione(root)
    noto, symbola = _find_fonts()
    updated = False
    if gem is None:
        dest = root / "assets" / "gemojione"
        log(f"fetching ruby-gemojione with apt-get download + dpkg -x into {dest}")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                _run(["apt-get", "download", "ruby-gemojione"], cwd=tmp)
            except AssetsMissing:
                _run(["apt-get", "update"])
                updated = True
                _run(["apt-get", "download", "ruby-gemojione"], cwd=tmp)
            deb = sorted(Path(tmp).glob("ruby-gemojione_*.deb"))[-1]
            dest.mkdir(parents=True, exist_ok=True)
            _run(["dpkg", "-x", str(deb), str(dest)])
    pkgs = [p for p, f in (("fonts-noto-color-emoji", noto), ("fonts-symbola", symbola)) if f is None]
    if pkgs:
        log(f"installing {' '.join(pkgs)} with apt-get")
        try:
            _run(["apt-get", "install", "-y", *pkgs])
        except AssetsMissing:
            if updated:
                raise
            _run(["apt-get", "update"])
            _run(["apt-get", "install", "-y", *pkgs])
    return find_assets(root)
