"""The emulated link really limits, and leaves nothing of its own behind.

No timing targets here: ``paramcast bench link`` measures. These tests only check that the
emulation is in effect (a transfer cannot beat its ideal time by much) and that clean-up is total.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from paramcast.bench import link as link_mod
from paramcast.bench.link import EmulatedLink, LinkUnavailable, run_link


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _our_children() -> list[int]:
    """Processes still running the link's roles that this test process started."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and str(link_mod._ROLES) in cmd:
            pids.append(int(entry))
    return pids


def _skip_unless_possible() -> None:
    missing = link_mod._missing_requirements()
    if missing:
        pytest.skip("network namespaces cannot be made here: missing " + "; ".join(missing))


def test_missing_root_is_named(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LinkUnavailable, match="root"):
        run_link(profiles=["4G-15"], calls=1)


@pytest.mark.parametrize("kwargs", [{"profiles": ["6G"]}, {"loss": 1.0}, {"calls": 0}, {"rtt_ms": 10, "jitter_ms": 6}])
def test_bad_arguments_raise_before_touching_the_network(kwargs):
    with pytest.raises(ValueError):
        run_link(**kwargs)


@pytest.mark.network
def test_link_limits_and_cleans_up():
    _skip_unless_possible()
    result = run_link(profiles=["4G-15"], rtt_ms=20.0, calls=3, new_conn_calls=1)
    row = result["rows"][0]
    assert row["down_bytes"] >= 97 * 1500 * 4
    # The link is in effect: neither the ping nor an adapt call beats what the link allows.
    assert row["ping_rtt_median_ms"] >= 0.9 * 20.0
    assert row["keepalive_median_ms"] >= 0.9 * row["ideal_ms"]
    assert row["new_conn_median_ms"] >= 0.9 * row["ideal_ms"]
    assert row["tbf"]["down"]["bytes"] >= row["down_bytes"]
    assert result["delay_line"]["forwarded"] > 0
    ours = set(result["link"]["namespaces"])
    assert not ours & _namespaces()
    assert _our_children() == []


@pytest.mark.network
def test_interrupt_inside_the_link_still_cleans_up():
    _skip_unless_possible()
    with pytest.raises(KeyboardInterrupt):
        with EmulatedLink(rtt_ms=10.0) as link:
            names = set(link.ns.values())
            assert names <= _namespaces()
            raise KeyboardInterrupt
    assert not names & _namespaces()
    assert _our_children() == []


# ------------------------------------------------------------------------------------ link grid
def test_grid_series_per_level():
    from paramcast.bench.link_grid import _cells, _series

    names = {lvl: [s["name"] for s in _series(lvl, 8, 3, {"nf4": 0.3})] for lvl in ("full", "grid", "target")}
    assert names["target"] == ["default fp32", "https fp32", "auto 150 ms", "auto 75 ms"]
    assert {"default fp16", "default int8", "cubic auto 150 ms"} <= set(names["full"]) - set(names["grid"])
    cubic = _series("grid", 8, 3, {})[0]
    assert cubic["name"] == "cubic fp32" and cubic["calls"] == 5 and cubic["new_conn_calls"] == 2
    assert all(s["calls"] == 12 for s in _series("full", 8, 3, {}) if s["quant"] == "auto")
    assert _cells((0.0, 0.01), (20.0,), 5.0) == [(20.0, 0.0, 5.0), (20.0, 0.01, 5.0), (20.0, 0.0, 0.0)]
    assert _cells((0.0,), (20.0,), 0.0) == [(20.0, 0.0, 0.0)]


@pytest.mark.network
def test_grid_runs_every_configuration_over_http_and_https(tmp_path):
    _skip_unless_possible()
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("HTTPS rows need the openssl command")
    from paramcast.bench.link_grid import _markdown, _plot, run_grid
    from paramcast.cloud.tcp import available_congestion_controls

    result = run_grid(losses=(0.0,), rtts=(10.0,), jitter_ms=0.0, profiles=("5G-100",), target_profiles=(),
                      target_rtt=10.0, calls=2, new_conn_calls=1, log=lambda *_: None)
    rows = {r["series"]: r for r in result["rows"]}
    assert set(rows) == {"cubic fp32", "default fp32", "https fp32", "default fp16", "default int8", "default nf4",
                         "auto 150 ms", "auto 75 ms", "cubic auto 150 ms"}
    assert rows["cubic fp32"]["server_cc"] == "cubic"
    assert rows["default fp32"]["server_cc"] == ("bbr" if "bbr" in available_congestion_controls() else
                                                 rows["default fp32"]["server_cc"])
    assert rows["https fp32"]["https"] and rows["https fp32"]["new_conn_calls"] == 1
    for r in rows.values():  # the link is in effect for every configuration
        assert r["keepalive_median_ms"] >= 0.9 * r["ideal_sent_ms"], r
    assert rows["default nf4"]["quants_used"] == {"nf4": 2}
    assert sum(rows["auto 150 ms"]["quants_used"].values()) == 6
    assert rows["auto 150 ms"]["last_decision"]["samples"] >= 1
    md = _markdown(result)
    assert "HTTPS vs HTTP" in md and "| 5G-100 | 10 |" in md
    assert _plot(result | {"rows": [r | {"jitter_ms": 1.0} for r in result["rows"]]}, tmp_path / "g.png").stat().st_size > 0
